"""The `conekta-ingest` command: argument parsing and wiring only; the work lives elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from ingest import broker, receiver, signature
from ingest.config import ConfigError, Settings, load_settings
from ingest.logs import configure_logging

log = structlog.get_logger(__name__)

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connections and logs (flags override env vars)")
    group.add_argument("--database-url", help="PostgreSQL URL [env DATABASE_URL]")
    group.add_argument("--amqp-url", help="RabbitMQ URL [env AMQP_URL]")
    group.add_argument(
        "--log-format", choices=["auto", "json", "console"], help="[env CONEKTA_INGEST_LOG_FORMAT]"
    )
    group.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="[env CONEKTA_INGEST_LOG_LEVEL]",
    )
    return common


def _receiver_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address [env CONEKTA_INGEST_HOST, 127.0.0.1]")
    parser.add_argument("--port", type=int, help="listen port [env CONEKTA_INGEST_PORT, 8080]")
    parser.add_argument(
        "--keys", help="Conekta public key PEM files, comma-separated [env CONEKTA_WEBHOOK_KEYS]"
    )
    parser.add_argument(
        "--allow-unsigned",
        action="store_true",
        default=None,
        help="accept events without a valid DIGEST (local experiments only)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conekta-ingest",
        description="Take Conekta webhooks, exactly once, into RabbitMQ and a Postgres ledger.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()

    serve = sub.add_parser("serve", parents=[common], help="run the HTTP receiver")
    _receiver_flags(serve)
    serve.set_defaults(handler=cmd_serve)

    run = sub.add_parser(
        "run", parents=[common], help="receiver and worker in one process (one box, demos)"
    )
    _receiver_flags(run)
    run.set_defaults(handler=cmd_run)

    migrate = sub.add_parser(
        "migrate", parents=[common], help="declare the broker topology and migrate the database"
    )
    migrate.set_defaults(handler=cmd_migrate)

    keys = sub.add_parser("keys", help="development key pairs")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    generate = keys_sub.add_parser(
        "generate", parents=[common], help="write a development RSA-2048 key pair"
    )
    generate.add_argument("--dir", type=Path, default=Path(".dev/keys"), help="output folder")
    generate.add_argument("--name", default="conekta-dev", help="file name stem")
    generate.set_defaults(handler=cmd_keys_generate)

    send = sub.add_parser(
        "send", parents=[common], help="sign event files as Conekta does and post them"
    )
    send.add_argument("files", nargs="+", type=Path, metavar="FILE")
    send.add_argument("--url", default="http://127.0.0.1:8080/webhooks/conekta")
    send.add_argument("--key", type=Path, help="private key PEM to sign with (omit: unsigned)")
    send.set_defaults(handler=cmd_send)

    from worker import cli as worker_cli  # the worker adds its own commands

    worker_cli.add_commands(sub, common)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    keys = getattr(args, "keys", None)
    overrides: dict[str, Any] = {
        "database_url": args.__dict__.get("database_url"),
        "amqp_url": args.__dict__.get("amqp_url"),
        "log_format": args.__dict__.get("log_format"),
        "log_level": args.__dict__.get("log_level"),
        "host": args.__dict__.get("host"),
        "port": args.__dict__.get("port"),
        "allow_unsigned": args.__dict__.get("allow_unsigned"),
        "webhook_keys": tuple(Path(p) for p in keys.split(",") if p) if keys else None,
    }
    return load_settings(os.environ, overrides)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the process then drains and exits."""
    stop = asyncio.Event()

    def stopping() -> None:
        log.info("stop signal received")
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    return stop


async def serve_app(app: web.Application, settings: Settings, stop: Awaitable[object]) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info(
        "receiver listening", url=f"http://{settings.host}:{settings.port}{receiver.WEBHOOK_PATH}"
    )
    try:
        await stop
    finally:
        await runner.cleanup()


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    stop = stop_on_signals()
    await serve_app(receiver.create_app(settings), settings, stop.wait())
    return 0


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runner import run_worker

    stop = stop_on_signals()
    app = receiver.create_app(settings)
    await asyncio.gather(
        serve_app(app, settings, stop.wait()),
        run_worker(settings, stop, serve_metrics=False),
    )
    return 0


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from worker import migrations

    connection = await broker.connect(settings.amqp_url, "conekta-ingest migrate", attempts=5)
    try:
        await broker.declare_topology(connection)
    finally:
        await connection.close()
    print("broker topology declared")
    applied = await migrations.migrate(settings.database_url)
    print(f"database migrated ({len(applied)} migration(s) applied: {', '.join(applied) or '-'})")
    return 0


async def cmd_keys_generate(args: argparse.Namespace, settings: Settings) -> int:
    private, public = signature.generate_key_pair(args.dir, args.name)
    print(f"private key (signs, for `send`): {private}")
    print(f"public key (verifies, for CONEKTA_WEBHOOK_KEYS): {public}")
    return 0


async def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.send import send_files

    failures = await send_files(args.files, args.url, args.key)
    return 1 if failures else 0


SERVICES = {cmd_serve, cmd_run, cmd_migrate}


def _log_level(args: argparse.Namespace, settings: Settings) -> str:
    """Services log at the configured level; one-shot tools only warnings unless asked."""
    from worker.cli import cmd_work

    asked = args.__dict__.get("log_level") or os.environ.get("CONEKTA_INGEST_LOG_LEVEL")
    if asked or args.handler in SERVICES | {cmd_work}:
        return settings.log_level
    return "warning"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        parser.error(str(exc))
    configure_logging(settings.log_format, _log_level(args, settings))
    handler: Command = args.handler
    try:
        return _run(handler(args, settings))
    except (signature.KeyFileError, ConfigError) as exc:
        print(f"conekta-ingest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(coroutine: Awaitable[int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]
