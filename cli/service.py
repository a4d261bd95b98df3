"""The long-lived commands: serve (receiver), work (worker), run (both), migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable

import structlog
from aiohttp import web

from core import broker, lifecycle
from core.errors import TaskFailing
from core.settings import Settings
from core.supervisor import Supervisor, for_settings
from ingest import receiver
from ops import retention
from store import Store, migrations
from worker.runner import run_worker

log = structlog.get_logger(__name__)


async def serve_receiver(app: web.Application, settings: Settings, stop: Awaitable[object]) -> None:
    url = f"http://{settings.host}:{settings.port}{receiver.WEBHOOK_PATH}"
    runner = await lifecycle.start_site(app, settings.host, settings.port)
    log.info("receiver listening", url=url)
    try:
        await stop
    finally:
        await runner.cleanup()


# A supervised task failed past its bound: the orchestrator should replace this process.
EXIT_TASK_FAILING = 3


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    stop = lifecycle.stop_on_signals()
    supervisor = for_settings(settings, stop)
    await serve_receiver(receiver.create_app(settings, supervisor), settings, stop.wait())
    return exit_code(supervisor)


async def cmd_work(args: argparse.Namespace, settings: Settings) -> int:
    stop = lifecycle.stop_on_signals()
    supervisor = for_settings(settings, stop)
    with contextlib.suppress(TaskFailing):
        await run_worker(settings, stop, supervisor=supervisor)
    return exit_code(supervisor)


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """One supervisor for both: the receiver's /readyz also says when a worker task fails."""
    stop = lifecycle.stop_on_signals()
    supervisor = for_settings(settings, stop)
    app = receiver.create_app(settings, supervisor)
    with contextlib.suppress(TaskFailing):
        await asyncio.gather(
            serve_receiver(app, settings, stop.wait()),
            run_worker(settings, stop, serve_metrics=False, supervisor=supervisor),
        )
    return exit_code(supervisor)


def exit_code(supervisor: Supervisor) -> int:
    """The process exit code: non-zero when a supervised task kept failing."""
    if supervisor.gave_up is None:
        return 0
    log.critical("exiting: a supervised task kept failing", task=supervisor.gave_up)
    return EXIT_TASK_FAILING


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    connection = await broker.connect(settings.amqp_url, "conekta-ingest migrate", attempts=5)
    try:
        await broker.declare_topology(connection)
    finally:
        await connection.close()
    print("broker topology declared")
    applied = await migrations.migrate(settings.database_url)
    print(f"database migrated ({len(applied)} migration(s) applied: {', '.join(applied) or '-'})")
    async with Store.open(settings.database_url) as store:
        await retention.ensure_partitions(store)  # a year ahead; `archive prune` keeps it so
    print("runtime grants applied, month partitions ready")
    return 0


# Services log at the configured level; one-shot tools only warnings unless asked.
SERVICES = {cmd_serve, cmd_work, cmd_run, cmd_migrate}
