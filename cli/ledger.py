"""`conekta-ingest ledger …`: balances (now or as of a moment, per mode), entries for
accountants, verify, and closing a month. Printing only; the work lives in ops/ledger.py."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from cli.common import confirm, parse_time, print_json, read
from core.settings import MODES, Settings
from core.verifier import Verifier
from domain import periods
from ops import audit, ledger, provenance
from store import Store


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    ledger = sub.add_parser("ledger", help="read and check the ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="COMMAND")
    balances = ledger_sub.add_parser("balances", parents=[common], help="every account balance")
    balances.add_argument(
        "--at", type=parse_time, help="as of this moment: money that moved by then (ISO or unix)"
    )
    _mode_flag(balances)
    balances.add_argument("--json", action="store_true", help="machine-readable output")
    balances.set_defaults(handler=cmd_ledger_balances)

    entries = ledger_sub.add_parser(
        "entries", parents=[common], help="ledger entries for accountants, by effective date"
    )
    entries.add_argument("--account", help="only this account (e.g. conekta:receivable)")
    entries.add_argument("--since", type=parse_time, help="effective at or after T")
    entries.add_argument("--until", type=parse_time, help="effective before T")
    _mode_flag(entries)
    output = entries.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="CSV with a header row")
    output.add_argument("--json", action="store_true", help="a JSON list")
    entries.set_defaults(handler=cmd_ledger_entries)

    verify = ledger_sub.add_parser(
        "verify", parents=[common], help="check every ledger invariant; non-zero exit on failure"
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.add_argument(
        "--provenance",
        action="store_true",
        help="also check every posting's signature or API record again (Conekta's keys: "
        "CONEKTA_WEBHOOK_KEYS, CONEKTA_WEBHOOK_VERIFY_ONLY_KEYS) and list those without one",
    )
    verify.set_defaults(handler=cmd_ledger_verify)

    close = ledger_sub.add_parser(
        "close",
        parents=[common],
        help="close a month and every one before it: balances in them never change (audited)",
    )
    close.add_argument("--month", required=True, help="YYYY-MM, a month of the ledger's zone")
    close.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    close.add_argument("--json", action="store_true", help="machine-readable output")
    close.set_defaults(handler=cmd_ledger_close)
    closes = ledger_sub.add_parser(
        "closes", parents=[common], help="the months closed, newest first"
    )
    closes.add_argument("--json", action="store_true", help="machine-readable output")
    closes.set_defaults(handler=cmd_ledger_closes)


def _mode_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode", choices=sorted(MODES), help="only live or only test money (default: both)"
    )


def _livemode(args: argparse.Namespace) -> bool | None:
    return MODES[args.mode] if args.mode else None


def _mode_name(livemode: bool) -> str:
    return "live" if livemode else "test"


async def cmd_ledger_balances(args: argparse.Namespace, settings: Settings) -> int:
    rows = await read(settings, lambda s: ledger.balances(s, at=args.at, livemode=_livemode(args)))
    if args.json:
        print_json(rows)
        return 0
    print(f"{'mode':5} {'account':40} {'currency':8} {'balance (cents)':>16}  type")
    for row in rows:
        print(
            f"{_mode_name(row['livemode']):5} {row['account']:40} {row['currency']:8} "
            f"{row['balance']:>16}  {row['type']:9} {row['reading']}".rstrip()
        )
    return 0


async def cmd_ledger_entries(args: argparse.Namespace, settings: Settings) -> int:
    """The console's entries, in the same shape: a JSON list, its CSV (formula-like cells
    defused), or a table."""
    selection = ledger.EntryFilter(
        account=args.account, since=args.since, until=args.until, livemode=_livemode(args)
    )
    async with Store.open(settings.database_url, max_size=1) as store:
        if args.csv:
            async for chunk in ledger.entries_csv(store, selection):
                sys.stdout.write(chunk)
            return 0
        rows = await ledger.all_entries(store, selection)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'effective at':32} {'mode':4} {'business key':52} {'account':36} cur {'cents':>12}")
    for row in rows:
        occurred = row["occurred_at"]
        late = f"  (occurred {occurred})" if occurred != row["effective_at"] else ""
        print(
            f"{row['effective_at']:32} {_mode_name(row['livemode']):4} {row['business_key']:52}"
            f" {row['account']:36} {row['currency']} {row['amount']:>12}{late}"
        )
    return 0


async def cmd_ledger_verify(args: argparse.Namespace, settings: Settings) -> int:
    results = await read(settings, ledger.verify)
    warnings = await read(settings, ledger.warnings)
    failed = [(check, rows) for check, rows in results if rows]
    backed = None
    if args.provenance:
        verifier = Verifier.from_settings(settings)
        backed = await read(settings, lambda store: provenance.verify(store, verifier))
    if args.json:
        print_json(
            {
                "ok": not failed and (backed is None or backed.ok),
                "checks": [
                    {"check": c.description, "ok": not rows, "violations": rows}
                    for c, rows in results
                ],
                "provenance": backed.summary() if backed else None,
                "warnings": [{"warning": c.description, "rows": rows} for c, rows in warnings],
            }
        )
    else:
        for check, rows in results:
            print(f"{'FAIL' if rows else 'ok  '}  {check.description}")
            for row in rows[:20]:
                print(f"        {row}")
        for check, rows in warnings:
            if rows:  # not a failure: the exit code stays 0
                print(f"warn  {check.description}: {len(rows)}")
                for row in rows[:20]:
                    print(f"        {row}")
        if backed is not None:
            _print_provenance(backed)
        ok = not failed and (backed is None or backed.ok)
        print("ledger verified" if ok else "ledger verify failed")
    return 0 if not failed and (backed is None or backed.ok) else 1


def _print_provenance(report: provenance.Report) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
    print(f"{'ok  ' if report.ok else 'FAIL'}  every posting backed by Conekta ({counts})")
    for category, rows in report.listed.items():
        for row in rows:
            print(f"        {category:10} {row['business_key']}  {row['why']}")


async def cmd_ledger_close(args: argparse.Namespace, settings: Settings) -> int:
    tz = settings.ledger_tz
    month = periods.parse_month(args.month)  # a wrong one says so before the question
    question = f"close {month:%Y-%m} ({tz.key}) and every month before it, for good?"
    if not args.yes and not await confirm(question):
        print("nothing closed")
        return 1
    async with Store.open(settings.database_url, max_size=1) as store:
        closed = await ledger.close_month(
            store, args.month, tz, audit.os_actor(), datetime.now(UTC)
        )
    if args.json:
        print_json(closed)
    else:
        print(
            f"closed {closed['month']} and every month before it ({closed['time_zone']}): a later"
            f" movement dated before {closed['closed_before']} is booked at that instant"
        )
    return 0


async def cmd_ledger_closes(args: argparse.Namespace, settings: Settings) -> int:
    rows = await read(settings, ledger.closes)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(
            f"{row['month']} ({row['time_zone']})  closed before {row['closed_before']}"
            f"  at {row['closed_at']} by {row['actor']}"
        )
    if not rows:
        print("no month is closed")
    return 0
