"""`conekta-ingest`: the parser of every command, settings from env and flags, and dispatch."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from cli import (
    audit,
    common,
    console,
    dead_letters,
    events,
    fulfillment,
    keys,
    ledger,
    orders,
    reconcile,
    retention,
    service,
    settlement,
)
from core import lifecycle
from core.errors import ApiKeyRejected, BadRequest, ConfigError, KeyFileError, RetentionRefused
from core.logs import configure_logging
from core.settings import Settings, load_settings, zone

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
    group.add_argument(
        "--tz",
        help="the ledger's time zone: a bare date (or a time without an offset) in a date option"
        " is read there, and months are its months [env CONEKTA_LEDGER_TZ, America/Mexico_City]",
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
    serve.set_defaults(handler=service.cmd_serve)

    run = sub.add_parser(
        "run", parents=[common], help="receiver and worker in one process (one box, demos)"
    )
    _receiver_flags(run)
    run.set_defaults(handler=service.cmd_run)

    migrate = sub.add_parser(
        "migrate", parents=[common], help="declare the broker topology and migrate the database"
    )
    migrate.set_defaults(handler=service.cmd_migrate)

    work = sub.add_parser("work", parents=[common], help="consume and apply order events")
    work.set_defaults(handler=service.cmd_work)
    keys.add_commands(sub, common)
    orders.add_commands(sub, common)
    dead_letters.add_commands(sub, common)
    reconcile.add_commands(sub, common)
    audit.add_commands(sub, common)
    events.add_commands(sub, common)
    ledger.add_commands(sub, common)
    fulfillment.add_commands(sub, common)
    retention.add_commands(sub, common)
    console.add_commands(sub, common)
    settlement.add_commands(sub, common)
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
        "ledger_tz": _zone(args.__dict__.get("tz")),
    }
    return load_settings(os.environ, overrides)


def _zone(name: str | None) -> Any:
    try:
        return zone(name) if name else None
    except ValueError as exc:
        raise ConfigError(f"--tz: {exc}") from None


def _log_level(args: argparse.Namespace, settings: Settings) -> str:
    """Services log at the configured level; one-shot tools only warnings unless asked."""
    asked = args.__dict__.get("log_level") or os.environ.get("CONEKTA_INGEST_LOG_LEVEL")
    if asked or args.handler in service.SERVICES or args.handler is console.cmd_console:
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
    common.resolve_times(args, settings.ledger_tz)
    handler: Command = args.handler
    try:
        code = lifecycle.run(handler(args, settings))
        sys.stdout.flush()  # a reader gone shows here, not as a traceback at exit
        return code
    except (KeyFileError, ConfigError, ApiKeyRejected, BadRequest, RetentionRefused) as exc:
        print(f"conekta-ingest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """`conekta-ingest stats | head`: the reader closed the pipe; stop quietly, as a shell
    tool does (stdout pointed at /dev/null so that flushing at exit does not complain)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a reader gone
