"""The long-lived commands: serve (receiver), work (worker), run (both), migrate."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable

import structlog
from aiohttp import web

from core import broker, lifecycle
from core.settings import Settings
from ingest import receiver
from worker import migrations
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


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    stop = lifecycle.stop_on_signals()
    await serve_receiver(receiver.create_app(settings), settings, stop.wait())
    return 0


async def cmd_work(args: argparse.Namespace, settings: Settings) -> int:
    await run_worker(settings, lifecycle.stop_on_signals())
    return 0


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    stop = lifecycle.stop_on_signals()
    app = receiver.create_app(settings)
    await asyncio.gather(
        serve_receiver(app, settings, stop.wait()),
        run_worker(settings, stop, serve_metrics=False),
    )
    return 0


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    connection = await broker.connect(settings.amqp_url, "conekta-ingest migrate", attempts=5)
    try:
        await broker.declare_topology(connection)
    finally:
        await connection.close()
    print("broker topology declared")
    applied = await migrations.migrate(settings.database_url)
    print(f"database migrated ({len(applied)} migration(s) applied: {', '.join(applied) or '-'})")
    return 0


# Services log at the configured level; one-shot tools only warnings unless asked.
SERVICES = {cmd_serve, cmd_work, cmd_run, cmd_migrate}
