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

from cli.common import conekta_api, parse_time, print_json, read, when
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
        "record",
        parents=[common],
        help="book the JSON answer of POST /orders (FILE or -) as your attested word (audited)",
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
    for label, value in _readable(order, settings):
        print(f"{label:24} {value}")
    print("chargebacks:" if order["chargebacks"] else "chargebacks:            none")
    for c in order["chargebacks"]:
        print(f"  {c['id']}  {c['status']:12} {c['amount']:>12} cents  charge {c['charge_id']}")
    print("events:")
    for event in order["events"]:
        print(
            f"  {when(event['created_at'], settings)}  {event['event_id']}  {event['type']:26}"
            f" {event['outcome']}"
        )
    return 0


def _readable(order: dict[str, Any], settings: Settings) -> list[tuple[str, object]]:
    """The order's facts as lines a person reads: units named, times in the ledger's zone, no
    Python reprs."""
    last = order.get("last_change")
    changed = f"{when(last['created_at'], settings)} by {last['event_id']}" if last else None
    return [
        ("id", order["id"]),
        ("status", order["status"]),
        ("mode", "live" if order["livemode"] else "test"),
        ("amount (cents)", f"{order['amount']} {order['currency']}"),
        ("refunded (cents)", f"{order['refunded_amount']} {order['currency']}"),
        ("customer", order["customer_key"] or "unknown"),
        ("last change", changed or "none applied"),
        (
            "last event weighed",
            f"{when(order['last_event_created_at'], settings)} {order['last_event_id']}",
        ),
        ("updated at", when(order["updated_at"], settings)),
    ]


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
            print(f"{d.order_id}  {_difference(d)}")
        print(f"{len(ids)} order(s) checked, {len(differences)} difference(s)")
        if fixed:
            print_report(fixed)
    return 1 if differences else 0


def _difference(d: order_sync.Difference) -> str:
    """One difference in words: an order one side does not know is said so plainly."""
    if d.field == "order":
        if d.ours is None and d.conekta is None:
            return "unknown to both: not in the ledger, and Conekta has no such order"
        if d.ours is None:
            return f"not in the ledger; Conekta has it ({d.conekta})"
        return f"unknown to Conekta; the ledger has it ({d.ours})"
    unit = " (cents)" if d.field.startswith("amount") else ""
    return f"{d.field}{unit}: ours {_value(d.ours)}, conekta {_value(d.conekta)}"


def _value(value: object) -> str:
    if value is None or isinstance(value, bool):
        return {None: "none", True: "yes", False: "no"}[value]
    return str(value)


async def cmd_orders_record(args: argparse.Namespace, settings: Settings) -> int:
    source = sys.stdin.buffer.read if args.file == "-" else Path(args.file).read_bytes
    raw = await asyncio.to_thread(source)
    try:
        order = orjson.loads(raw)
        actor = audit.os_actor()
        async with Store.open(settings.database_url, fee_tax_rate=settings.fee_tax_rate) as store:
            event_id, outcome = await order_sync.record(store, order, actor)
            details = {"target": str(order.get("id")), "event_id": event_id}
            await audit.record(
                store, actor, "orders.record", 1, {**details, "outcome": outcome.value}
            )
    except (orjson.JSONDecodeError, UnapplicableEvent) as exc:
        print(f"conekta-ingest: cannot record this order: {exc}", file=sys.stderr)
        return 1
    result = {"order_id": order["id"], "event_id": event_id, "outcome": outcome.value}
    if args.json:
        print_json(result)
    else:
        print(f"order {order['id']}: {outcome.value} (event {event_id})")
    return 0
