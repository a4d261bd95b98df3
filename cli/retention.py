"""`archive prune`: drop whole months of the archive and the outbox, exported and verified first,
then forget the ids of events pruned before CONEKTA_INGEST_DEDUPE_MONTHS;
`archive restore`: load such an export back.

Run them with the owner's DATABASE_URL (like `migrate`); the actions live in ops.retention.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.settings import Settings
from ops import retention
from store import Store


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    archive = sub.add_parser("archive", help="retention of the archive and the outbox")
    archive_sub = archive.add_subparsers(dest="archive_command", required=True, metavar="COMMAND")
    prune = archive_sub.add_parser(
        "prune",
        parents=[common],
        help="drop months of archived events and sent outbox messages (as the tables' owner)",
    )
    prune.add_argument(
        "--before",
        type=_month,
        metavar="YYYY-MM",
        help="prune months before this one [default: keep CONEKTA_INGEST_RETENTION_MONTHS (13) "
        "whole months before the current one]",
    )
    prune.add_argument(
        "--export",
        type=Path,
        metavar="DIR",
        help="first write each month to DIR as <table>-YYYY-MM.jsonl.gz + .sha256 and verify it",
    )
    prune.set_defaults(handler=cmd_archive_prune)
    restore = archive_sub.add_parser(
        "restore", parents=[common], help="load an export of `archive prune` back (as the owner)"
    )
    restore.add_argument("files", nargs="+", type=Path, metavar="FILE.jsonl.gz")
    restore.set_defaults(handler=cmd_archive_restore)


def _month(text: str) -> Any:
    try:
        return retention.parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def cmd_archive_prune(args: argparse.Namespace, settings: Settings) -> int:
    before = args.before or retention.months_before(
        retention.utc_today(), settings.retention_months
    )
    async with Store.open(settings.database_url) as store:
        results = await retention.prune(store, before, args.export)
        if settings.dedupe_months:
            horizon = retention.months_before(retention.utc_today(), settings.dedupe_months)
            forgotten = await retention.forget_ids(store, horizon)
            print(f"event ids archived before {horizon:%Y-%m} (rows pruned): {forgotten} forgotten")
    kept = 0
    for result in results:
        what = "pruned" if result.pruned else "kept (unsent outbox messages)"
        where = f" -> {result.export}" if result.export else ""
        print(f"{result.table} {result.month:%Y-%m}: {result.rows} rows {what}{where}")
        kept += not result.pruned
    if not results:
        print(f"nothing before {before:%Y-%m} to prune")
    return 1 if kept else 0


async def cmd_archive_restore(args: argparse.Namespace, settings: Settings) -> int:
    async with Store.open(settings.database_url) as store:
        for path in args.files:
            print(f"{path}: {await retention.restore(store, path)} rows restored")
    return 0
