"""`orders show|verify|record`: an order as the ledger has it, compared with Conekta's, or
booked from Conekta's answer to `POST /orders`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from cli.common import conekta_api, parse_time, print_json, read
from cli.reconcile import print_report, run_reconcile
from core.errors import UnapplicableEvent
from core.settings import MODES, Settings
from ops import audit, ledger
from store import Store
from worker import order_sync


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    orders = sub.add_parser("orders", help="read orders")
    orders_sub = orders.add_subparsers(dest="orders_command", required=True, metavar="COMMAND")
    show = orders_sub.add_parser("show", parents=[common], help="one order and its events")
    show.add_argument("order_id", metavar="ID")
    show.add_argument(
        "--mode",
        choices=sorted(MODES),
        help="the order of this mode (default: the live one if there is one, else the test one)",
    )
    show.add_argument("--json", action="store_true", help="machine-readable output (livemode)")
    show.set_defaults(handler=cmd_orders_show)

    verify = orders_sub.add_parser(
        "verify", parents=[common], help="compare orders with Conekta's; exit 1 on any difference"
    )
    verify.add_argument("order_ids", nargs="*", metavar="ID")
    verify.add_argument("--since", type=parse_time, help="orders whose last event is >= T")
    verify.add_argument("--fix", action="store_true", help="backfill missing events (reconcile)")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_orders_verify)
    record = orders_sub.add_parser(
        "record", parents=[common], help="book the JSON answer of POST /orders (FILE or -)"
    )
    record.add_argument("file", metavar="FILE|-")
    record.add_argument("--json", action="store_true")
    record.set_defaults(handler=cmd_orders_record)


async def cmd_orders_show(args: argparse.Namespace, settings: Settings) -> int:
    livemode = MODES[args.mode] if args.mode else None
    order = await read(settings, lambda c: ledger.order(c, args.order_id, livemode))
    if order is None:
        mode = f" in {args.mode} mode" if args.mode else ""
        print(f"no order {args.order_id}{mode}", file=sys.stderr)
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


async def cmd_orders_verify(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.order_ids) == bool(args.since):
        print("say which: ID... or --since T", file=sys.stderr)
        return 2
    async with conekta_api(settings) as api, Store.open(settings.database_url) as store:
        ids = args.order_ids or await store.orders.updated_since(args.since)
        differences, created = await order_sync.verify(store, api, ids)
    fixed = None
    if args.fix and created:
        since = datetime.fromtimestamp(min(created.values()), UTC) - timedelta(minutes=5)
        fixed = await run_reconcile(settings, since, None, dry_run=False)
    if args.json:
        print_json(
            {
                "checked": len(ids),
                "differences": [d.summary() for d in differences],
                "fix": fixed.summary() if fixed else None,
            }
        )
    else:
        for d in differences:
            print(f"{d.order_id}  {d.field:16} ours {d.ours!s:20} conekta {d.conekta}")
        print(f"{len(ids)} order(s) checked, {len(differences)} difference(s)")
        if fixed:
            print_report(fixed)
            print("run `orders verify` again once the worker has applied the backfilled events")
    return 1 if differences else 0


async def cmd_orders_record(args: argparse.Namespace, settings: Settings) -> int:
    source = sys.stdin.buffer.read if args.file == "-" else Path(args.file).read_bytes
    raw = await asyncio.to_thread(source)
    try:
        order = orjson.loads(raw)
        async with Store.open(settings.database_url, fee_tax_rate=settings.fee_tax_rate) as store:
            event_id, outcome = await order_sync.record(store, order)
            details = {"target": str(order.get("id")), "event_id": event_id}
            await audit.record(store, audit.os_actor(), "orders.record", 1, details)
    except (orjson.JSONDecodeError, UnapplicableEvent) as exc:
        print(f"conekta-ingest: cannot record this order: {exc}", file=sys.stderr)
        return 1
    result = {"order_id": order["id"], "event_id": event_id, "outcome": outcome.value}
    if args.json:
        print_json(result)
    else:
        print(f"order {order['id']}: {outcome.value} (event {event_id})")
    return 0
