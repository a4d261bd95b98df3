"""The worker's commands of `conekta-ingest`: work, orders, ledger."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import orjson

from ingest.config import Settings
from worker import db, reports


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    work = sub.add_parser("work", parents=[common], help="consume and apply order events")
    work.set_defaults(handler=cmd_work)

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


async def cmd_work(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runner import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop)
    return 0


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


async def cmd_orders_show(args: argparse.Namespace, settings: Settings) -> int:
    connection = await db.connect(settings.database_url)
    try:
        order = await reports.order(connection, args.order_id)
    finally:
        await connection.close()
    if order is None:
        print(f"no order {args.order_id}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(order)
        return 0
    for key in (
        "id",
        "status",
        "amount",
        "currency",
        "customer_key",
        "livemode",
        "last_event_id",
        "last_event_created_at",
        "updated_at",
    ):
        print(f"{key:22} {order[key]}")
    print("events:")
    for event in order["events"]:
        print(
            f"  {event['created_at']}  {event['event_id']}  {event['type']:24} {event['outcome']}"
        )
    return 0


async def cmd_ledger_balances(args: argparse.Namespace, settings: Settings) -> int:
    connection = await db.connect(settings.database_url)
    try:
        rows = await reports.balances(connection)
    finally:
        await connection.close()
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'account':40} {'currency':8} {'balance (cents)':>16}")
    for row in rows:
        print(f"{row['account']:40} {row['currency']:8} {row['balance']:>16}")
    return 0


async def cmd_ledger_verify(args: argparse.Namespace, settings: Settings) -> int:
    connection = await db.connect(settings.database_url)
    try:
        results = await reports.verify(connection)
    finally:
        await connection.close()
    failed = [(check, rows) for check, rows in results if rows]
    if args.json:
        _print_json(
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
