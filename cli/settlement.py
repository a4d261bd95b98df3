"""`conekta-ingest settle …` (pull, match, report, verify) and `bank import`: the ledger against
Conekta's money and the bank. Printing only; the work lives in worker/settlement.py (pull) and
ops/settlement.py, ops/settlement_report.py."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.common import conekta_api, parse_time, print_json, read
from core.settings import Settings
from domain import payout_report, periods
from ops import audit, settlement, settlement_report
from store import Store
from worker import settlement as pulling


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    settle = sub.add_parser("settle", help="the ledger against Conekta's balance and the bank")
    settle_sub = settle.add_subparsers(dest="settle_command", required=True, metavar="COMMAND")
    pull = settle_sub.add_parser(
        "pull",
        parents=[common],
        help="store Conekta's transactions, transfers and balance (idempotent)",
    )
    pull.add_argument(
        "--since", type=parse_time, help="page back to this time (default: the watermark - 3 d)"
    )
    pull.add_argument("--json", action="store_true")
    pull.set_defaults(handler=cmd_pull)

    match = settle_sub.add_parser(
        "match", parents=[common], help="match Conekta's records and the bank lines to the ledger"
    )
    match.add_argument("--apply", action="store_true", help="post (default: a dry run)")
    match.add_argument("--json", action="store_true")
    match.set_defaults(handler=cmd_match)

    report = settle_sub.add_parser(
        "report", parents=[common], help="per transfer of a month, what it paid; unmatched items"
    )
    report.add_argument("--month", required=True, help="YYYY-MM, a month of the ledger's zone")
    output = report.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true", help="the transfers as CSV")
    output.add_argument("--json", action="store_true")
    report.set_defaults(handler=cmd_report)

    verify = settle_sub.add_parser(
        "verify", parents=[common], help="check settlement's four invariants; exit 1 if broken"
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_verify)

    bank = sub.add_parser("bank", help="the merchant's bank statements")
    bank_sub = bank.add_subparsers(dest="bank_command", required=True, metavar="COMMAND")
    load = bank_sub.add_parser(
        "import",
        parents=[common],
        help="import a statement (CSV date,amount,reference,description), once per file",
    )
    load.add_argument("file", type=Path)
    load.add_argument("--account", required=True, help="the bank account's name: bank:<NAME>")
    load.add_argument("--currency", default="MXN", help="the account's currency (default MXN)")
    load.add_argument("--json", action="store_true")
    load.set_defaults(handler=cmd_bank_import)


async def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    async with conekta_api(settings) as api, Store.open(settings.database_url) as store:
        report = await pulling.pull(store, api, settings.conekta_api_livemode, since=args.since)
        summary = report.summary()
        await audit.record(
            store, audit.os_actor(), "settle_pull", sum(report.new.values()), summary
        )
    if args.json:
        print_json(summary)
        return 0
    for kind in pulling.KINDS:
        print(f"{kind}: {report.seen[kind]} seen, {report.new[kind]} new")
    for skipped in report.skipped:
        print(f"skipped {skipped['kind']} {skipped['id']}: {skipped['why']}")
    print(f"balance snapshot at {summary['balance_taken_at']}")
    return 0


async def cmd_match(args: argparse.Namespace, settings: Settings) -> int:
    async with Store.open(settings.database_url) as store:
        result = await settlement.match(
            store, apply=args.apply, tax_rate=settings.fee_tax_rate, tz=settings.ledger_tz
        )
        summary = result.summary()
        if args.apply:
            details = {"postings": [p["business_key"] for p in summary["postings"]]}
            await audit.record(
                store, audit.os_actor(), "settle_match", len(result.match.postings), details
            )
    if args.json:
        print_json(summary)
        return 0
    verb = "posted" if args.apply else "would post (dry run: --apply posts)"
    print(f"{verb}: {len(summary['postings'])}")
    for posting in summary["postings"]:
        entries = ", ".join(f"{a} {v:+d}" for a, v in posting["entries"].items())
        print(f"  {posting['business_key']:<48} {posting['currency']}  {entries}")
    print("records: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())))
    for item in summary["items"]:
        if item["state"] in ("unmatched", "in_transit", "review"):
            print(
                f"  {item['state']:<10} {item['type']:<20} {item['id']}  {item['amount']:>10}"
                f"  {item['note']}"
            )
    return 0


async def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    month = periods.parse_month(args.month)
    data = await read(
        settings,
        lambda store: settlement_report.report(
            store,
            month,
            tz=settings.ledger_tz,
            tax_rate=settings.fee_tax_rate,
            now=datetime.now(UTC),
        ),
    )
    if args.json:
        print_json(data)
    elif args.csv:
        _report_csv(data)
    else:
        _report_text(data)
    return 0


REPORT_COLUMNS = (
    "transfer",
    "created_at",
    "currency",
    "amount",
    *payout_report.COLUMNS,
    "difference",
    "status",
    "bank_date",
)


def _report_csv(data: dict[str, Any]) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(REPORT_COLUMNS)
    for row in data["transfers"]:
        writer.writerow([row[c] if row[c] is not None else "" for c in REPORT_COLUMNS])


def _report_text(data: dict[str, Any]) -> None:
    print(f"settlement {data['month']} ({data['time_zone']}); rule: {data['rule']}")
    for row in data["transfers"]:
        landed = f"landed {row['bank_date']}" if row["bank_date"] else row["status"]
        print(
            f"\ntransfer {row['transfer']}  {row['created_at']}  {row['amount']} {row['currency']}"
            f"  ref {row['statement_reference']}  {landed}"
        )
        for column in (*payout_report.COLUMNS, "difference"):
            print(f"  {column:<12} {row[column]:>12}")
        print(f"  {'= amount':<12} {row['amount']:>12}")
    print(f"\nunmatched and for review: {len(data['unmatched'])}")
    for item in data["unmatched"]:
        print(
            f"  {item['state']:<10} {item['type']:<20} {item['id']}  {item['amount']:>10}"
            f"  {item['age_days']} d  {item['note']}"
        )


async def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    result = await read(
        settings,
        lambda store: settlement.verify(
            store,
            now=datetime.now(UTC),
            tax_rate=settings.fee_tax_rate,
            tz=settings.ledger_tz,
            livemode=settings.conekta_api_livemode,
        ),
    )
    if args.json:
        print_json(result.summary())
    else:
        for row in result.balances:
            print(
                f"balance {row['currency']} at {row['taken_at']}: ledger {row['ledger']},"
                f" Conekta {row['conekta']} (available {row['available']}, pending"
                f" {row['pending']}, retained {row['retained']})"
            )
        for broken in result.broken:
            print(f"FAIL  invariant {broken.invariant}: {broken.what}")
        if result.ok:
            print("ok    settlement: every invariant holds")
    return 0 if result.ok else 1


async def cmd_bank_import(args: argparse.Namespace, settings: Settings) -> int:
    data = await asyncio.to_thread(args.file.read_bytes)
    async with Store.open(settings.database_url) as store:
        actor = audit.os_actor()
        result = await settlement.import_statement(
            store, data, args.file.name, args.account, currency=args.currency, actor=actor
        )
        if result["imported"]:
            await audit.record(store, actor, "bank_import", result["lines"], result)
    if args.json:
        print_json(result)
    elif result["imported"]:
        print(
            f"imported {result['lines']} lines into {result['account']}"
            f" ({result['first_date']} to {result['last_date']}),"
            f" statement {result['statement_id']}"
        )
    else:
        print(result["why"])
    return 0
