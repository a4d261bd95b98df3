"""The one-shot commands: keys, send, orders, dlq (events: cli/events.py; ledger:
cli/ledger.py). Printing only; the actions live in ingest/ and worker/ (the console's API calls
the same functions)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from core import broker
from core.errors import BadRequest
from core.settings import Settings
from ingest import signature
from ingest.send import send_files
from worker import audit, dlq, explore, reports
from worker.store import Store

T = TypeVar("T")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    orders = sub.add_parser("orders", help="read orders")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True, metavar="COMMAND")
    show = orders_sub.add_parser("show", parents=[common], help="one order and its events")
    show.add_argument("order_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=cmd_orders_show)

    _add_dlq_commands(sub, common)


def _add_dlq_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay, purge")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    listing = dlq_sub.add_parser("list", parents=[common], help="every dead letter, one line each")
    _filter_options(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_dlq_list)
    show = dlq_sub.add_parser("show", parents=[common], help="one dead letter whole")
    show.add_argument("id", metavar="ID", help="the event id (message id)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_dlq_show)
    replay = dlq_sub.add_parser(
        "replay", parents=[common], help="put dead letters back into processing (idempotent)"
    )
    _selection(replay)
    replay.set_defaults(handler=cmd_dlq_replay)
    purge = dlq_sub.add_parser(
        "purge",
        parents=[common],
        help="never apply these dead letters (a tombstone in the archive keeps resends out)",
    )
    _selection(purge)
    purge.add_argument(
        "--reason", default="", help="why (kept in the audit trail; required unless --dry-run)"
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=cmd_dlq_purge)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", dest="event_type", help="only dead letters of this event type")
    parser.add_argument("--kind", help="only this kind (permanent, transient, delivery_limit, ...)")
    parser.add_argument("--order", dest="order_id", help="only dead letters of this order")


def _selection(parser: argparse.ArgumentParser) -> None:
    """Which dead letters: ID..., --all, or filters (every one given must match)."""
    parser.add_argument("ids", nargs="*", metavar="ID", help="event ids")
    parser.add_argument("--all", action="store_true", help="every dead letter")
    _filter_options(parser)
    parser.add_argument("--dry-run", action="store_true", help="only show what would be done")
    parser.add_argument("--json", action="store_true")


def parse_time(value: str) -> datetime:
    """ISO 8601 (UTC when no zone is given) or unix seconds."""
    try:
        return explore.parse_time(value)
    except BadRequest as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


async def cmd_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = await read(settings, lambda store: dlq.list_letters(store, _filters(args)))
    if args.json:
        print_json(rows)
        return 0
    print(f"{len(rows)} dead letter(s)")
    for row in rows:
        print(
            f"{row['id']}  {row['type']:22} {row['order_id'] or '-':26} attempts={row['attempts']}"
            f"  first={row['first_failed_at']}  last={row['last_failed_at']}\n"
            f"    {row['kind']} (from {row['source_queue']}): {row['reason']}"
        )
    return 0


async def cmd_dlq_show(args: argparse.Namespace, settings: Settings) -> int:
    found = await read(settings, lambda store: dlq.show(store, args.id))
    if not found:
        print(f"no dead letter {args.id}", file=sys.stderr)
        return 1
    print_json(found[0] if len(found) == 1 else found)
    return 0


def _filters(args: argparse.Namespace) -> dlq.Selection | None:
    """`dlq list`'s filters, if any were given."""
    selection = dlq.Selection(event_type=args.event_type, kind=args.kind, order_id=args.order_id)
    return selection if any((args.event_type, args.kind, args.order_id)) else None


def _dlq_selection(args: argparse.Namespace) -> dlq.Selection:
    return dlq.Selection(
        ids=tuple(args.ids),
        event_type=args.event_type,
        kind=args.kind,
        order_id=args.order_id,
        everything=args.all,
    )


def progress_line(n: int, total: int) -> None:
    """A long action's progress on stderr, now and then."""
    if n % 500 == 0 or n == total:
        print(f"... {n}/{total}", file=sys.stderr)


async def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    selection = _dlq_selection(args)
    async with Store.open(settings.database_url, max_size=1) as store:
        if args.dry_run:
            return _report_dlq(args, await dlq.preview(store, "replay", selection))
        connection = await broker.connect(settings.amqp_url, "conekta-ingest dlq", attempts=3)
        publisher = broker.Publisher(connection, settings.publish_timeout)
        try:
            result = await dlq.replay(
                store, publisher, selection, audit.os_actor(), progress=progress_line
            )
        finally:
            await publisher.close()
    return _report_dlq(args, result)


async def cmd_dlq_purge(args: argparse.Namespace, settings: Settings) -> int:
    selection = _dlq_selection(args)
    if not args.dry_run and not args.reason.strip():
        raise BadRequest("a purge needs a reason: --reason (it is kept in the audit trail)")
    async with Store.open(settings.database_url, max_size=1) as store:
        preview = await dlq.preview(store, "purge", selection)
        if args.dry_run or not preview.matched:
            return _report_dlq(args, preview)
        question = f"purge {len(preview.matched)} dead letter(s) for good?"
        if not args.yes and not await confirm(question):
            print("nothing purged")
            return 1
        result = await dlq.purge(
            store, selection, audit.os_actor(), reason=args.reason, progress=progress_line
        )
    return _report_dlq(args, result)


def _report_dlq(args: argparse.Namespace, result: dlq.ActionResult) -> int:
    past = {"replay": "replayed", "purge": "purged"}[result.action]
    if args.json:
        print_json({**result.summary(), past: result.done})
    elif result.dry_run:
        print(f"would {result.action} {len(result.matched)} dead letter(s):")
        for row in result.matched:
            print(f"  {row['id']}  {row['type']:22} {row['kind']}: {row['reason']}")
    else:
        missing = result.not_found
        print(
            f"{past} {len(result.done)} dead letter(s)"
            + (f"; not found: {' '.join(missing)}" if missing else "")
        )
    return 1 if result.not_found else 0


async def confirm(question: str) -> bool:
    answer = await asyncio.to_thread(input, f"{question} [y/N] ")
    return answer.strip().lower() in {"y", "yes"}
