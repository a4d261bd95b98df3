"""Retention: months of the archive (events) and the outbox leave whole, by dropping their
partition, after an optional export that is verified against the database first.

An export is `<table>-YYYY-MM.jsonl.gz` (one JSON object per row, bytea as "\\x…" hex, as
Postgres' row_to_json writes it), `<…>.sha256` (sha256sum format) and `<…>.sig`: an HMAC-SHA256
of the file's name and sha256 with CONEKTA_EXPORT_KEY, a secret that does not live on the export
volume (anyone with the volume can recompute a checksum, not the signature). Verification
re-reads the written file: its sha256, a complete gzip decode, the row count and an
order-independent checksum of the lines, both compared with the month in the database; the drop
then re-checks count and checksum under an exclusive lock.

A restore trusts nothing but the signature: it refuses a file whose signature fails, any row
outside the file's month, any outbox row not already sent (the relay would publish it again), and
archived events whose DIGEST does not verify (worker.provenance). Exports made before signing
existed are signed once with the audited `archive sign FILE`, after their .sha256 is checked.

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
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import structlog

from core.errors import RetentionRefused
from core.verifier import Verifier, digest_of
from domain.outcome import Outcome
from domain.provenance import API, SIGNED, is_attested
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
    export_key: str | None = None,
    today: date | None = None,
    actor: str | None = None,
) -> list[MonthResult]:
    """Prune every month before `before` of both tables (exported first when `export_dir`,
    signed with `export_key`); audited (`archive.prune`), also when it stops half-way (what was
    dropped is gone)."""
    today = today or utc_today()
    if before > today.replace(day=1):
        raise RetentionRefused(f"{before:%Y-%m} is not in the past: the current month stays")
    if export_dir is not None and not export_key:
        raise RetentionRefused("exports are signed: set CONEKTA_EXPORT_KEY (README, retention)")
    await ensure_partitions(store, today)
    results: list[MonthResult] = []
    try:
        for table in TABLES:
            for month in await store.retention.months(table):
                if month < before:
                    results.append(await _prune_month(store, table, month, export_dir, export_key))
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
    store: Store, table: str, month: date, export_dir: Path | None, export_key: str | None
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
    if export_dir is not None and export_key:
        path = await export_month(store, table, month, export_dir, export_key)
        verify_export(path, rows, checksum)
        check_signature(path, export_key)
    await store.retention.drop_month(table, month, rows, checksum)
    log.info("month pruned", table=table, month=f"{month:%Y-%m}", rows=rows, export=str(path))
    return MonthResult(table, month, rows, path, pruned=True)


async def export_month(
    store: Store, table: str, month: date, folder: Path, export_key: str
) -> Path:
    """Write the month as gzip JSON lines plus its sha256 and signature files; returns the
    .jsonl.gz path."""
    path = folder / f"{table}-{month:%Y-%m}.jsonl.gz"
    partial = path.with_name(path.name + ".partial")
    with _create(partial) as out:  # a one-shot command: blocking file writes are fine
        async for line in store.retention.month_lines(table, month):
            out.write(line.encode() + b"\n")
    _publish(partial, path)
    sign_export(path, export_key)
    return path


def _create(partial: Path) -> gzip.GzipFile:
    partial.parent.mkdir(parents=True, exist_ok=True)
    return gzip.GzipFile(partial, "wb")


def _publish(partial: Path, path: Path) -> None:
    """The export under its final name, with its checksum file (written last)."""
    digest = _sha256(partial)
    os.replace(partial, path)
    _checksum_file(path).write_text(f"{digest}  {path.name}\n")


async def restore(
    store: Store,
    path: Path,
    export_key: str,
    verifier: Verifier | None,
    batch: int = 1000,
    *,
    actor: str | None = None,
) -> int:
    """Load a signed export back (its month partition is made again); returns rows restored;
    audited (`archive.restore`).

    The file's name says its table and month; its sha256 and signature must match, and every row
    must pass `check_rows` (events need `verifier`). Rows already present are skipped."""
    restored = await _restore(store, path, export_key, verifier, batch)
    details = {"target": path.name, "file": str(path)}
    await audit.record(store, actor or audit.os_actor(), "archive.restore", restored, details)
    return restored


async def _restore(
    store: Store, path: Path, export_key: str, verifier: Verifier | None, batch: int
) -> int:
    table, month = export_name(path)
    _check_sha256(path)
    check_signature(path, export_key)
    check_rows(path, table, month, verifier)
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


def export_name(path: Path) -> tuple[str, date]:
    """The table and month an export's name says (RetentionRefused when it is not one)."""
    table = path.name.split("-", 1)[0]
    if table not in TABLES or not path.name.endswith(".jsonl.gz"):
        raise RetentionRefused(f"{path.name}: not an export (<table>-YYYY-MM.jsonl.gz)")
    try:
        month = parse_month(path.name.removeprefix(f"{table}-").removesuffix(".jsonl.gz"))
    except ValueError as exc:
        raise RetentionRefused(f"{path.name}: {exc}") from None
    return table, month


# -- signatures -----------------------------------------------------------------------------

SIGNATURE_SCHEME = "hmac-sha256"


def export_mac(name: str, sha256: str, export_key: str) -> str:
    """HMAC-SHA256 of an export's name (its table and month) and its sha256."""
    message = f"conekta-ingest export v1\n{name}\n{sha256}\n".encode()
    return hmac.new(export_key.encode(), message, hashlib.sha256).hexdigest()


def sign_export(path: Path, export_key: str) -> Path:
    """Sign an export whose sha256 matches its .sha256 file; returns the .sig path."""
    digest = _check_sha256(path)
    signature = signature_file(path)
    mac = export_mac(path.name, digest, export_key)
    signature.write_text(f"{SIGNATURE_SCHEME} {mac}  {path.name}\n")
    return signature


def check_signature(path: Path, export_key: str) -> None:
    """RetentionRefused unless the .sig beside the export is its signature with this key."""
    signature = signature_file(path)
    try:
        scheme, mac = signature.read_text().split()[:2]
    except (OSError, ValueError):
        raise RetentionRefused(
            f"{path.name}: no signature ({signature.name}); an export made before signing "
            "existed is signed once with `archive sign FILE`"
        ) from None
    expected = export_mac(path.name, _sha256(path), export_key)
    if scheme != SIGNATURE_SCHEME or not hmac.compare_digest(mac, expected):
        raise RetentionRefused(
            f"{path.name}: signature does not match (another key, or the file was changed)"
        )


def signature_file(path: Path) -> Path:
    return path.with_name(path.name + ".sig")


# -- what a restore accepts -----------------------------------------------------------------

MAX_LISTED = 5  # rows named in a refusal


def check_rows(path: Path, table: str, month: date, verifier: Verifier | None) -> None:
    """RetentionRefused unless every row belongs to the file's month, every outbox row was sent,
    and every archived event is vouched for (see `row_problem`). Reads the whole file first:
    nothing is restored from a file with one bad row."""
    if table == "events" and verifier is None:
        raise RetentionRefused("restoring events verifies them: set CONEKTA_WEBHOOK_KEYS")
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = add_months(month, 1)
    end = datetime(end_month.year, end_month.month, 1, tzinfo=UTC)
    problems: list[str] = []
    count = 0
    with gzip.open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if problem := row_problem(table, line, start, end, verifier):
                count += 1
                if len(problems) < MAX_LISTED:
                    problems.append(f"line {number}: {problem}")
    if count:
        raise RetentionRefused(
            f"{path.name}: {count} rows refused, nothing restored; " + "; ".join(problems)
        )


def row_problem(
    table: str, line: bytes, start: datetime, end: datetime, verifier: Verifier | None
) -> str | None:
    """Why a row may not be restored, or None."""
    try:
        row: dict[str, Any] = orjson.loads(line)
        at = datetime.fromisoformat(row[TABLES[table]])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return f"not a row of {table}: {exc}"
    if not start <= at < end:
        return f"{TABLES[table]} {at.isoformat()} is outside {start:%Y-%m}"
    if table == "outbox":
        return None if row.get("sent_at") else "outbox message not sent (it would go out again)"
    assert verifier is not None
    return event_problem(row, verifier)


def event_problem(row: dict[str, Any], verifier: Verifier) -> str | None:
    """An archived event is restored when nothing it says can move money unchecked: `api` and
    attested rows are our own record (the export's signature vouches for them), `unverified`
    ones moved nothing; any other row whose request carries a DIGEST must verify, and one that
    claims `signed` must carry one. (Rows older than provenance without a DIGEST are restored:
    a replay verifies again and refuses what nothing vouches for.)"""
    provenance, outcome = row.get("provenance"), row.get("outcome")
    if provenance == API or is_attested(provenance) or outcome == Outcome.UNVERIFIED:
        return None
    request = row.get("request")
    if digest_of(request) is None and provenance != SIGNED:
        return None
    try:
        body = bytes.fromhex(str(row["body"]).removeprefix("\\x"))
    except (KeyError, ValueError):
        return f"event {row.get('event_id')}: body is not bytea hex"
    if reason := verifier.reason(body, request):
        return f"event {row.get('event_id')}: {reason}"
    return None


def verify_export(path: Path, rows: int, checksum: Decimal) -> None:
    """Raise RetentionRefused unless the file is intact and holds exactly the month's rows."""
    _check_sha256(path)
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


def sha256_of(path: Path) -> str:
    return _sha256(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _check_sha256(path: Path) -> str:
    """The file's sha256, if it matches its .sha256 file (else RetentionRefused)."""
    try:
        recorded = _checksum_file(path).read_text().split()[0]
    except (OSError, IndexError):
        raise RetentionRefused(f"{path}: no {_checksum_file(path).name} beside it") from None
    digest = _sha256(path)
    if not hmac.compare_digest(digest, recorded):
        raise RetentionRefused(f"{path}: sha256 differs from {_checksum_file(path).name}")
    return digest
