"""The one-shot commands: keys, send, orders, ledger, dlq. Printing only; the actions
live in ingest/ and worker/ (the console's API calls the same functions)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from core.settings import Settings
from ingest import signature
from ingest.send import send_files
from worker import dlq, reports
from worker.store import Store

T = TypeVar("T")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    orders = sub.add_parser("orders", help="read orders")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True, metavar="COMMAND")
    show = orders_sub.add_parser("show", parents=[common], help="one order and its events")
    show.add_argument("order_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=cmd_orders_show)

    ledger = sub.add_parser("ledger", help="read and check the ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="COMMAND")
    balances = ledger_sub.add_parser("balances", parents=[common], help="every account balance")
    balances.add_argument("--json", action="store_true", help="machine-readable output")
    balances.set_defaults(handler=cmd_ledger_balances)
    verify = ledger_sub.add_parser(
        "verify", parents=[common], help="check every ledger invariant; non-zero exit on failure"
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=cmd_ledger_verify)
    _add_dlq_commands(sub, common)


def _add_dlq_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay, purge")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    listing = dlq_sub.add_parser("list", parents=[common], help="every dead letter, one line each")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_dlq_list)
    show = dlq_sub.add_parser("show", parents=[common], help="one dead letter whole")
    show.add_argument("id", metavar="ID", help="the event id (message id)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_dlq_show)
    replay = dlq_sub.add_parser(
        "replay", parents=[common], help="put dead letters back into processing (idempotent)"
    )
    _selection(replay, with_type=True)
    replay.set_defaults(handler=cmd_dlq_replay)
    purge = dlq_sub.add_parser("purge", parents=[common], help="delete dead letters for good")
    _selection(purge, with_type=False)
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=cmd_dlq_purge)


def _selection(parser: argparse.ArgumentParser, *, with_type: bool) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help="event ids")
    parser.add_argument("--all", action="store_true", help="every dead letter")
    if with_type:
        parser.add_argument("--type", dest="event_type", help="every dead letter of this type")
    parser.add_argument("--json", action="store_true")


async def cmd_keys_generate(args: argparse.Namespace, settings: Settings) -> int:
    private, public = signature.generate_key_pair(args.dir, args.name)
    print(f"private key (signs, for `send`): {private}")
    print(f"public key (verifies, for CONEKTA_WEBHOOK_KEYS): {public}")
    return 0


async def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    files: list[Path] = args.files
    failures = await send_files(files, args.url, args.key)
    return 1 if failures else 0


async def read(settings: Settings, query: Callable[[Store], Awaitable[T]]) -> T:
    """Run one read against the database on a store of its own."""
    async with Store.open(settings.database_url, max_size=1) as store:
        return await query(store)


def print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


async def cmd_orders_show(args: argparse.Namespace, settings: Settings) -> int:
    order = await read(settings, lambda c: reports.order(c, args.order_id))
    if order is None:
        print(f"no order {args.order_id}", file=sys.stderr)
        return 1
    if args.json:
        print_json(order)
        return 0
    for key, value in order.items():
        if key != "events":
            print(f"{key:22} {value}")
    print("events:")
    for event in order["events"]:
        print(
            f"  {event['created_at']}  {event['event_id']}  {event['type']:24} {event['outcome']}"
        )
    return 0


async def cmd_ledger_balances(args: argparse.Namespace, settings: Settings) -> int:
    rows = await read(settings, reports.balances)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'account':40} {'currency':8} {'balance (cents)':>16}")
    for row in rows:
        print(f"{row['account']:40} {row['currency']:8} {row['balance']:>16}")
    return 0


async def cmd_ledger_verify(args: argparse.Namespace, settings: Settings) -> int:
    results = await read(settings, reports.verify)
    failed = [(check, rows) for check, rows in results if rows]
    if args.json:
        print_json(
            {
                "ok": not failed,
                "checks": [
                    {"check": c.description, "ok": not rows, "violations": rows}
                    for c, rows in results
                ],
            }
        )
    else:
        for check, rows in results:
            print(f"{'FAIL' if rows else 'ok  '}  {check.description}")
            for row in rows[:20]:
                print(f"        {row}")
        print("ledger verified" if not failed else f"{len(failed)} check(s) failed")
    return 1 if failed else 0


async def cmd_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    async with dlq.open_dead_letters(settings.amqp_url) as letters:
        rows = [dlq.describe(m).summary() for m in letters.messages]
    if args.json:
        print_json(rows)
        return 0
    print(f"{len(rows)} dead letter(s)")
    for row in rows:
        print(
            f"{row['id']}  {row['type']:22} {row['order_id'] or '-':26} attempts={row['attempts']}"
            f"  first={row['first_failed_at']}  last={row['last_failed_at']}\n"
            f"    {row['kind']}: {row['reason']}"
        )
    return 0


async def cmd_dlq_show(args: argparse.Namespace, settings: Settings) -> int:
    async with dlq.open_dead_letters(settings.amqp_url) as letters:
        found = [dlq.full_view(m) for m in letters.select(dlq.matcher([args.id]))]
    if not found:
        print(f"no dead letter {args.id}", file=sys.stderr)
        return 1
    print_json(found[0] if len(found) == 1 else found)
    return 0


def _check_selection(args: argparse.Namespace) -> str | None:
    chosen = bool(args.ids) + bool(args.all) + bool(getattr(args, "event_type", None))
    if chosen != 1:
        return "say which: ID..., --all" + (" or --type T" if hasattr(args, "event_type") else "")
    return None


async def _act_on_dead_letters(args: argparse.Namespace, settings: Settings, verb: str) -> int:
    if problem := _check_selection(args):
        print(problem, file=sys.stderr)
        return 2
    match = dlq.matcher(args.ids, getattr(args, "event_type", None), args.all)
    done: list[str] = []
    async with dlq.open_dead_letters(settings.amqp_url) as letters:
        selected = letters.select(match)
        if verb == "purge" and selected and not args.yes and not _confirm(len(selected)):
            print("nothing purged")
            return 1
        for n, message in enumerate(selected, 1):
            await (letters.replay(message) if verb == "replay" else letters.purge(message))
            done.append(message.message_id or "")
            if n % 500 == 0:
                print(f"... {n}/{len(selected)}", file=sys.stderr)
    missing = sorted(set(args.ids) - set(done))
    past = {"replay": "replayed", "purge": "purged"}[verb]
    if args.json:
        print_json({past: done, "not_found": missing})
    else:
        print(
            f"{past} {len(done)} dead letter(s)"
            + (f"; not found: {' '.join(missing)}" if missing else "")
        )
    return 1 if missing else 0


def _confirm(count: int) -> bool:
    answer = input(f"purge {count} dead letter(s) for good? [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


async def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    return await _act_on_dead_letters(args, settings, "replay")


async def cmd_dlq_purge(args: argparse.Namespace, settings: Settings) -> int:
    return await _act_on_dead_letters(args, settings, "purge")
