"""`archive prune`: drop whole months of the archive and the outbox, exported and verified first,
then forget the ids of events pruned before CONEKTA_INGEST_DEDUPE_MONTHS;
`archive restore`: load such an export back (signed, its rows checked);
`archive sign`: sign an export made before signing existed, once, audited.

Run them with the owner's DATABASE_URL (like `migrate`) and CONEKTA_EXPORT_KEY; the actions live
in ops.retention.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.errors import RetentionRefused
from core.settings import Settings
from core.verifier import Verifier
from ops import audit, retention
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
        help="first write each month to DIR as <table>-YYYY-MM.jsonl.gz + .sha256 + .sig "
        "(signed with CONEKTA_EXPORT_KEY) and verify it",
    )
    prune.set_defaults(handler=cmd_archive_prune)
    restore = archive_sub.add_parser(
        "restore",
        parents=[common],
        help="load a signed export of `archive prune` back (as the owner); refuses rows outside "
        "its month, unsent outbox rows and events whose DIGEST does not verify",
    )
    restore.add_argument("files", nargs="+", type=Path, metavar="FILE.jsonl.gz")
    restore.set_defaults(handler=cmd_archive_restore)
    sign = archive_sub.add_parser(
        "sign",
        parents=[common],
        help="sign an export made before signing existed, after checking its .sha256 (audited)",
    )
    sign.add_argument("files", nargs="+", type=Path, metavar="FILE.jsonl.gz")
    sign.set_defaults(handler=cmd_archive_sign)


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
        try:
            results = await retention.prune(
                store, before, args.export, export_key=settings.export_key
            )
        except RetentionRefused as exc:
            print(f"conekta-ingest: {exc}", file=sys.stderr)
            return 2
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
    key = _export_key(settings)
    events = any(retention.export_name(path)[0] == "events" for path in args.files)
    verifier = Verifier.from_settings(settings) if events else None
    async with Store.open(settings.database_url) as store:
        for path in args.files:
            try:
                restored = await retention.restore(store, path, key, verifier)
            except RetentionRefused as exc:
                print(f"conekta-ingest: {exc}", file=sys.stderr)
                return 1
            print(f"{path}: {restored} rows restored")
    return 0


async def cmd_archive_sign(args: argparse.Namespace, settings: Settings) -> int:
    """Each file checked against its .sha256, then signed; one audit entry per file."""
    key = _export_key(settings)
    async with Store.open(settings.database_url) as store:
        for path in args.files:
            try:
                retention.export_name(path)
                signature = retention.sign_export(path, key)
            except RetentionRefused as exc:
                print(f"conekta-ingest: {exc}", file=sys.stderr)
                return 1
            details = {"target": path.name, "sha256": retention.sha256_of(path)}
            await audit.record(store, audit.os_actor(), "archive.sign", 1, details)
            print(f"{path}: signed -> {signature.name}")
    return 0


def _export_key(settings: Settings) -> str:
    if not settings.export_key:
        raise RetentionRefused("exports are signed: set CONEKTA_EXPORT_KEY (README, retention)")
    return settings.export_key
