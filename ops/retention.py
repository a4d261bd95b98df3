"""Retention: months of the archive (events) and the outbox leave whole, by dropping their
partition, after an optional export that is verified against the database first.

An export is `<table>-YYYY-MM.jsonl.gz` (one JSON object per row, bytea as "\\x…" hex, as
Postgres' row_to_json writes it) and `<…>.sha256` (sha256sum format). Verification re-reads the
written file: its sha256, a complete gzip decode, the row count and an order-independent checksum
of the lines, both compared with the month in the database; the drop then re-checks count and
checksum under an exclusive lock.

event_ids (every id archived, so a resent event stays a duplicate after its month is pruned) is
kept CONEKTA_INGEST_DEDUPE_MONTHS (25) whole months, then `forget_ids` drops those whose archived
row is gone. Conekta resends for days, not years; and should a forgotten one come back, it is
archived again while the order's rules (stale, duplicate) and the ledger's business keys keep it
from moving money or sending fulfillment twice.

Runs as the owner of the tables (dropping needs it; the runtime role cannot).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import structlog

from core.errors import RetentionRefused
from ops import audit
from store import Store

log = structlog.get_logger(__name__)

# The partitioned tables and the column each is partitioned by (the database's clock at insert).
TABLES = {"events": "applied_at", "outbox": "created_at"}
AHEAD_MONTHS = 12


@dataclass(frozen=True)
class MonthResult:
    table: str
    month: date
    rows: int
    export: Path | None  # None: dropped without export
    pruned: bool  # False: kept (outbox messages still unsent)

    def summary(self) -> dict[str, object]:
        return {
            "table": self.table,
            "month": f"{self.month:%Y-%m}",
            "rows": self.rows,
            "export": str(self.export) if self.export else None,
            "pruned": self.pruned,
        }


def parse_month(text: str) -> date:
    """`YYYY-MM` as the first day of that month."""
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise ValueError(f"not a month: {text!r} (expected YYYY-MM)") from None


def utc_today() -> date:
    """Months are UTC months, like the partitions."""
    return datetime.now(UTC).date()


def months_before(today: date, keep: int) -> date:
    """The first month to keep when keeping `keep` whole months before the current one."""
    return add_months(today, -keep)


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after (or before) the month of `day`."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


async def prune(
    store: Store,
    before: date,
    export_dir: Path | None,
    *,
    today: date | None = None,
    actor: str | None = None,
) -> list[MonthResult]:
    """Prune every month before `before` of both tables (exported first when `export_dir`);
    audited (`archive.prune`), also when it stops half-way (what was dropped is gone)."""
    today = today or utc_today()
    if before > today.replace(day=1):
        raise RetentionRefused(f"{before:%Y-%m} is not in the past: the current month stays")
    await ensure_partitions(store, today)
    results: list[MonthResult] = []
    try:
        for table in TABLES:
            for month in await store.retention.months(table):
                if month < before:
                    results.append(await _prune_month(store, table, month, export_dir))
    finally:
        if results:
            await audit.record(
                store,
                actor or audit.os_actor(),
                "archive.prune",
                sum(r.rows for r in results if r.pruned),
                {
                    "target": f"months before {before:%Y-%m}",
                    "export": str(export_dir) if export_dir else None,
                    "months": [r.summary() for r in results],
                },
            )
    return results


FORGET_BATCH = 10_000  # ids forgotten per transaction


async def forget_ids(store: Store, before: date) -> int:
    """Forget the ids archived before the month `before` whose rows are pruned; how many."""
    start = datetime(before.year, before.month, 1, tzinfo=UTC)
    forgotten = 0
    while batch := await store.retention.forget_event_ids(start, FORGET_BATCH):
        forgotten += batch
    log.info("event ids forgotten", before=f"{before:%Y-%m}", ids=forgotten)
    return forgotten


async def ensure_partitions(store: Store, today: date | None = None) -> None:
    """Partitions from this month through a year ahead (`migrate` and every prune call it)."""
    first = (today or utc_today()).replace(day=1)
    await store.retention.create_partitions(TABLES, first, add_months(first, AHEAD_MONTHS))


async def _prune_month(
    store: Store, table: str, month: date, export_dir: Path | None
) -> MonthResult:
    if table == "outbox" and (unsent := await store.retention.unsent_in_month(month)):
        log.warning(
            "month kept: fulfillment messages unsent",
            table=table,
            month=f"{month:%Y-%m}",
            unsent=unsent,
        )
        return MonthResult(table, month, 0, None, pruned=False)
    rows, checksum = await store.retention.month_summary(table, month)
    path = None
    if export_dir is not None:
        path = await export_month(store, table, month, export_dir)
        verify_export(path, rows, checksum)
    await store.retention.drop_month(table, month, rows, checksum)
    log.info("month pruned", table=table, month=f"{month:%Y-%m}", rows=rows, export=str(path))
    return MonthResult(table, month, rows, path, pruned=True)


async def export_month(store: Store, table: str, month: date, folder: Path) -> Path:
    """Write the month as gzip JSON lines plus its sha256 file; returns the .jsonl.gz path."""
    path = folder / f"{table}-{month:%Y-%m}.jsonl.gz"
    partial = path.with_name(path.name + ".partial")
    with _create(partial) as out:  # a one-shot command: blocking file writes are fine
        async for line in store.retention.month_lines(table, month):
            out.write(line.encode() + b"\n")
    _publish(partial, path)
    return path


def _create(partial: Path) -> gzip.GzipFile:
    partial.parent.mkdir(parents=True, exist_ok=True)
    return gzip.GzipFile(partial, "wb")


def _publish(partial: Path, path: Path) -> None:
    """The export under its final name, with its checksum file (written last)."""
    digest = _sha256(partial)
    os.replace(partial, path)
    _checksum_file(path).write_text(f"{digest}  {path.name}\n")


async def restore(store: Store, path: Path, batch: int = 1000, *, actor: str | None = None) -> int:
    """Load a verified export back (its month partition is made again); returns rows restored;
    audited (`archive.restore`).

    The file's name says its table; its sha256 must match. Rows already present are skipped."""
    restored = await _restore(store, path, batch)
    details = {"target": path.name, "file": str(path)}
    await audit.record(store, actor or audit.os_actor(), "archive.restore", restored, details)
    return restored


async def _restore(store: Store, path: Path, batch: int) -> int:
    table = path.name.split("-", 1)[0]
    if table not in TABLES or not path.name.endswith(".jsonl.gz"):
        raise RetentionRefused(f"{path.name}: not an export (<table>-YYYY-MM.jsonl.gz)")
    if _sha256(path) != _checksum_file(path).read_text().split()[0]:
        raise RetentionRefused(f"{path}: sha256 differs from {_checksum_file(path).name}")
    month = parse_month(path.name.removeprefix(f"{table}-").removesuffix(".jsonl.gz"))
    await store.retention.create_partitions({table: TABLES[table]}, month, month)
    restored, lines = 0, []
    with gzip.open(path, "rt", encoding="utf-8") as file:
        for line in file:
            lines.append(line.rstrip("\n"))
            if len(lines) == batch:
                await store.retention.restore(table, lines)
                restored, lines = restored + len(lines), []
    await store.retention.restore(table, lines)
    return restored + len(lines)


def verify_export(path: Path, rows: int, checksum: Decimal) -> None:
    """Raise RetentionRefused unless the file is intact and holds exactly the month's rows."""
    recorded = _checksum_file(path).read_text().split()[0]
    if _sha256(path) != recorded:
        raise RetentionRefused(f"{path}: sha256 differs from {_checksum_file(path).name}")
    count, total = 0, 0
    with gzip.open(path, "rb") as lines:  # a truncated or corrupt file raises here
        for line in lines:
            count += 1
            total += line_checksum(line.rstrip(b"\n"))
    if count != rows or total != checksum:
        raise RetentionRefused(
            f"{path}: {count} rows exported, {rows} in the database (or the checksum differs)"
        )


def line_checksum(line: bytes) -> int:
    """The first 60 bits of the line's md5: the database's month_summary adds the same."""
    return int(hashlib.md5(line, usedforsecurity=False).hexdigest()[:15], 16)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")
