"""The one-shot commands: keys, send, orders, dlq (events: cli/events.py; ledger:
cli/ledger.py). Printing only; the actions live in ingest/ and worker/ (the console's API calls
the same functions)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from core import broker
from core.settings import Settings
from ingest import signature
from ingest.send import send_files
from worker import audit, dlq, reports
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
    purge = dlq_sub.add_parser(
        "purge",
        parents=[common],
        help="never apply these dead letters (a tombstone in the archive keeps resends out)",
    )
    _selection(purge, with_type=False)
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--reason", default="(no reason given)", help="why: kept with the purge")
    purge.set_defaults(handler=cmd_dlq_purge)


def _selection(parser: argparse.ArgumentParser, *, with_type: bool) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help="event ids")
    parser.add_argument("--all", action="store_true", help="every dead letter")
    if with_type:
        parser.add_argument("--type", dest="event_type", help="every dead letter of this type")
    parser.add_argument("--json", action="store_true")


def parse_time(value: str) -> datetime:
    """ISO 8601 (UTC when no zone is given) or unix seconds."""
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    rows = [dlq.summary(r) for r in await read(settings, lambda store: store.dead_letters())]
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
    rows = await read(settings, lambda store: store.dead_letter(args.id))
    if not rows:
        print(f"no dead letter {args.id}", file=sys.stderr)
        return 1
    found = [dlq.full_view(row) for row in rows]
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
    selection = dlq.Selection(tuple(args.ids), getattr(args, "event_type", None), args.all)
    actor = audit.os_actor()
    async with Store.open(settings.database_url) as store:
        if verb == "purge":
            if not args.yes and not await _confirm_purge(store, selection):
                print("nothing purged")
                return 1
            done = await dlq.purge(store, selection, actor, args.reason)
        else:
            connection = await broker.connect(settings.amqp_url, "conekta-ingest dlq", attempts=3)
            publisher = broker.Publisher(connection, settings.publish_timeout)
            try:
                done = await dlq.replay(store, publisher, selection, actor)
            finally:
                await publisher.close()
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


async def _confirm_purge(store: Store, selection: dlq.Selection) -> bool:
    rows = await store.dead_letters()
    count = sum(
        selection.everything
        or r["message_id"] in selection.ids
        or r["type"] == selection.event_type
        for r in rows
    )
    if not count:
        return True  # nothing to purge: nothing to ask
    answer = await asyncio.to_thread(input, f"purge {count} dead letter(s) for good? [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


async def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    return await _act_on_dead_letters(args, settings, "replay")


async def cmd_dlq_purge(args: argparse.Namespace, settings: Settings) -> int:
    return await _act_on_dead_letters(args, settings, "purge")
