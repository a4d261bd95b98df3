"""`conekta-ingest console`: serve the ops console, and add its users."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import structlog

from cli import service
from console import users
from console.app import create_app
from core import lifecycle
from core.settings import Settings
from core.supervisor import for_settings
from ops import audit
from store import Store

log = structlog.get_logger(__name__)
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8081


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    console = sub.add_parser(
        "console", parents=[common], help="the ops console and admin API (login required)"
    )
    console.add_argument(
        "--host", dest="console_host", default=DEFAULT_HOST, help=f"[{DEFAULT_HOST}]"
    )
    console.add_argument(
        "--port", dest="console_port", type=int, default=DEFAULT_PORT, help=f"[{DEFAULT_PORT}]"
    )
    console.set_defaults(handler=cmd_console)
    console_sub = console.add_subparsers(dest="console_command", metavar="COMMAND")
    add_user = console_sub.add_parser(
        "add-user",
        parents=[common],
        help="create a console user, or reset its role and password (ends its sessions)",
    )
    add_user.add_argument("name", metavar="NAME")
    add_user.add_argument("--role", choices=[r.value for r in users.Role], required=True)
    add_user.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the password from standard input (never from the command line)",
    )
    add_user.set_defaults(handler=cmd_add_user)
    # User administration is the owner's (README "Roles and permissions"): run these with the
    # owner's DATABASE_URL, like `migrate`; the console's own role reads users and writes none.
    disable = console_sub.add_parser(
        "disable-user", parents=[common], help="a user can no longer log in; its sessions end"
    )
    disable.add_argument("name", metavar="NAME")
    disable.set_defaults(handler=cmd_disable_user)
    remove = console_sub.add_parser(
        "remove-user", parents=[common], help="remove a user and its sessions (audit trail kept)"
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=cmd_remove_user)


async def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    stop = lifecycle.stop_on_signals()
    supervisor = for_settings(settings, stop)
    app = create_app(settings, supervisor)
    runner = await lifecycle.start_site(app, args.console_host, args.console_port)
    log.info("console listening", url=f"http://{args.console_host}:{args.console_port}/")
    try:
        await stop.wait()  # a signal, or a supervised task that kept failing
    finally:
        await runner.cleanup()
    return service.exit_code(supervisor)


async def cmd_add_user(args: argparse.Namespace, settings: Settings) -> int:
    password = sys.stdin.readline().rstrip("\r\n")
    async with Store.open(settings.database_url, max_size=1) as store:
        created = await users.add_user(store, args.name, args.role, password, audit.os_actor())
    print(f"{'created' if created else 'updated'} {args.role} {args.name}")
    return 0


async def cmd_disable_user(args: argparse.Namespace, settings: Settings) -> int:
    async with Store.open(settings.database_url, max_size=1) as store:
        await users.disable_user(store, args.name, audit.os_actor())
    print(f"disabled {args.name}: its sessions ended")
    return 0


async def cmd_remove_user(args: argparse.Namespace, settings: Settings) -> int:
    async with Store.open(settings.database_url, max_size=1) as store:
        await users.remove_user(store, args.name, audit.os_actor())
    print(f"removed {args.name}")
    return 0
