"""Commands against Conekta's own record: reconcile, orders verify, orders record, stats.
Printing only; the actions live in worker/ (reconcile, order_sync, stats)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from cli.tools import parse_time
from core import broker
from core.errors import ApiKeyRejected, ConektaApiUnavailable, PublishFailed, UnapplicableEvent
from core.settings import Settings
from worker import order_sync, reconcile, stats
from worker.conekta_api import ConektaApi
from worker.store import Store

COLUMNS = ("seen", "archived", "backfilled", "missing", "in_flight", "never_stored")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser(
        "reconcile",
        parents=[common],
        help="backfill events Conekta's API lists that the archive lacks (idempotent)",
    )
    _window(run)
    run.add_argument("--dry-run", action="store_true", help="publish nothing; list what is missing")
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=cmd_reconcile)

    orders_sub = _subcommands(sub.choices["orders"])
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

    accounting = sub.add_parser(
        "stats", parents=[common], help="per day and type: archived, dead letters; vs Conekta"
    )
    _window(accounting)
    accounting.add_argument("--json", action="store_true")
    accounting.set_defaults(handler=cmd_stats)


def _window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=parse_time, help="Conekta created_at >= T (ISO or unix)")
    parser.add_argument("--until", type=parse_time, help="Conekta created_at < T (ISO or unix)")


def _subcommands(parser: argparse.ArgumentParser) -> Any:
    """The sub-command set of an existing command (`orders`), to add ours to it."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


@contextlib.asynccontextmanager
async def _api(settings: Settings) -> AsyncIterator[ConektaApi]:
    if not settings.conekta_api_key:
        raise ApiKeyRejected("set CONEKTA_API_KEY to a Conekta private key (key_...)")
    async with ConektaApi.open(settings.conekta_api_url, settings.conekta_api_key) as api:
        yield api


@contextlib.asynccontextmanager
async def _publisher(settings: Settings, dry_run: bool) -> AsyncIterator[broker.Publisher | None]:
    if dry_run:
        yield None
        return
    connection = await broker.connect(settings.amqp_url, "conekta-ingest reconcile", attempts=3)
    publisher = broker.Publisher(connection, settings.publish_timeout)
    try:
        yield publisher
    finally:
        await publisher.close()


def _progress(report: reconcile.Report) -> None:
    if sys.stderr.isatty():
        done = report.total("backfilled") + report.total("missing")
        print(
            f"\r... page {report.pages}: seen {report.total('seen')}, missing {done}",
            end="",
            file=sys.stderr,
        )


async def run_reconcile(
    settings: Settings,
    since: datetime | None,
    until: datetime | None,
    *,
    dry_run: bool,
) -> reconcile.Report:
    async with (
        _api(settings) as api,
        Store.open(settings.database_url) as store,
        _publisher(settings, dry_run) as publisher,
    ):
        report = await reconcile.reconcile(
            store, api, publisher, since=since, until=until, wait=True, progress=_progress
        )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    assert report is not None  # waited for the lock
    return report


async def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = await run_reconcile(settings, args.since, args.until, dry_run=args.dry_run)
    except (ConektaApiUnavailable, PublishFailed) as exc:
        print(f"conekta-ingest: reconcile failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(report.summary())
    else:
        print_report(report)
    return 0


def print_report(report: reconcile.Report) -> None:
    summary = report.summary()
    mode = {None: "", True: ", live", False: ", test"}[report.livemode]
    print(
        f"reconcile run {report.run_id}: {summary['since']} .. {summary['until']}{mode}"
        + (" (dry run: nothing published)" if report.dry_run else "")
    )
    shown = [c for c in COLUMNS if c == "seen" or summary[c]]
    print(f"{'type':30}" + "".join(f"{c.replace('_', ' '):>14}" for c in shown))
    for event_type, counts in summary["by_type"].items():
        print(f"{event_type:30}" + "".join(f"{counts.get(c, 0):>14}" for c in shown))
    print(f"{'total':30}" + "".join(f"{summary[c]:>14}" for c in shown))
    print(
        f"seen {summary['seen']}, already archived {summary['archived']}, "
        f"backfilled {summary['backfilled']}"
        + (f", missing {summary['missing']}" if report.dry_run else "")
        + f", in flight {summary['in_flight']}, never stored (pings) {summary['never_stored']}"
    )
    for missing in report.missing:
        print(f"  missing {missing.event_id}  {missing.type:26} {missing.created_at.isoformat()}")


async def cmd_orders_verify(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.order_ids) == bool(args.since):
        print("say which: ID... or --since T", file=sys.stderr)
        return 2
    async with _api(settings) as api, Store.open(settings.database_url) as store:
        ids = args.order_ids or await store.orders_updated_since(args.since)
        differences, created = await order_sync.verify(store, api, ids)
    fixed = None
    if args.fix and created:
        since = datetime.fromtimestamp(min(created.values()), UTC) - timedelta(minutes=5)
        fixed = await run_reconcile(settings, since, None, dry_run=False)
    if args.json:
        _print_json(
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
        async with Store.open(settings.database_url) as store:
            event_id, outcome = await order_sync.record(store, order)
    except (orjson.JSONDecodeError, UnapplicableEvent) as exc:
        print(f"conekta-ingest: cannot record this order: {exc}", file=sys.stderr)
        return 1
    result = {"order_id": order["id"], "event_id": event_id, "outcome": outcome.value}
    if args.json:
        _print_json(result)
    else:
        print(f"order {order['id']}: {outcome.value} (event {event_id})")
    return 0


async def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(days=7)
    async with Store.open(settings.database_url) as store:
        result = await stats.stats(store, settings.amqp_url, since, until)
    if args.json:
        _print_json(result)
        return 0
    print(f"{'day':12}{'type':30}counts")
    for row in result["days"]:
        counts = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("day", "type"))
        print(f"{row['day']:12}{row['type']:30}{counts}")
    print(
        f"dead letters {result['dead_letters']}, purged {result['purged']}, "
        f"queued: {', '.join(f'{q} {n}' for q, n in result['queued'].items())}"
    )
    last = result["last_reconcile"]
    if last is None:
        print("no reconcile yet: run `conekta-ingest reconcile`")
        return 0
    print(
        f"last reconcile (run {last['run_id']}, {last['finished_at']}): "
        f"{last['since']} .. {last['until']}"
    )
    print(f"  {'type':30}{'conekta':>9}{'archived':>10}{'diff':>6}  named")
    for t in last["types"]:
        named = ", ".join(
            f"{k.replace('_', ' ')} {t[k]}"
            for k in ("never_stored", "backfilled_not_archived", "unexplained")
            if t[k]
        )
        print(f"  {t['type']:30}{t['conekta']:>9}{t['archived']:>10}{t['difference']:>6}  {named}")
    print(f"  dead letters created in the window: {last['dead_letters_in_window']}")
    return 0
