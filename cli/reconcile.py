"""Commands against Conekta's own record: reconcile and stats (orders verify, orders record:
cli/orders.py).
Printing only; the actions live in worker/ (reconcile, order_sync) and ops/stats.py."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from cli.common import conekta_api, parse_time, print_json
from core.errors import ConektaApiUnavailable, PublishFailed
from core.settings import Settings
from ops import audit, stats
from store import Store
from worker import reconcile

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

    accounting = sub.add_parser(
        "stats", parents=[common], help="per day and type: archived, dead letters; vs Conekta"
    )
    _window(accounting)
    accounting.add_argument("--json", action="store_true")
    accounting.set_defaults(handler=cmd_stats)


def _window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=parse_time, help="Conekta created_at >= T (ISO or unix)")
    parser.add_argument("--until", type=parse_time, help="Conekta created_at < T (ISO or unix)")


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
    async with conekta_api(settings) as api, Store.open(settings.database_url) as store:
        applier = None if dry_run else reconcile.Applier(store, settings.accept_modes)
        try:
            report = await reconcile.reconcile(
                store, api, applier, since=since, until=until, wait=True, progress=_progress
            )
        except Exception as exc:
            failed = {"target": _window_text(since, until), "dry_run": dry_run, "error": str(exc)}
            await audit.record(store, audit.os_actor(), "reconcile", 0, failed)
            raise
        assert report is not None  # waited for the lock
        summary = {"target": _window_text(since, until), **report.summary()}
        await audit.record(
            store, audit.os_actor(), "reconcile", report.total("backfilled"), summary
        )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return report


def _window_text(since: datetime | None, until: datetime | None) -> str:
    return f"{since.isoformat() if since else 'since the last run'} .. {until or 'now'}"


async def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = await run_reconcile(settings, args.since, args.until, dry_run=args.dry_run)
    except (ConektaApiUnavailable, PublishFailed) as exc:
        print(f"conekta-ingest: reconcile failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(report.summary())
    else:
        print_report(report)
    return 0


def print_report(report: reconcile.Report) -> None:
    summary = report.summary()
    mode = {None: "", True: ", live", False: ", test"}[report.livemode]
    print(
        f"reconcile run {report.run_id}: {summary['since']} .. {summary['until']}{mode}"
        + (" (dry run: nothing applied)" if report.dry_run else "")
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
        + (f", FAILED {summary['failed']} (see the log)" if summary["failed"] else "")
    )
    if summary["backfilled"]:
        print(
            f"backfilled: {summary['backfilled']} event(s) Conekta lists that the archive did not "
            "have, now sent to the worker; webhooks missed, or sent before this archive existed"
        )
    for missing in report.missing:
        print(f"  missing {missing.event_id}  {missing.type:26} {missing.created_at.isoformat()}")


async def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(days=7)
    async with Store.open(settings.database_url) as store:
        result = await stats.stats(store, settings.amqp_url, since, until)
    if args.json:
        print_json(result)
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
