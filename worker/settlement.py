"""`settle pull`: Conekta's record of the money copied into the store, idempotently.

Pages `GET /transactions` and `GET /transfers` newest first until a page reaches the watermark
(the newest `created_at` an earlier pull stored) minus LOOKBACK, or `--since`; then snapshots
`GET /balance`. Every record is stored raw with when it was first seen; a record seen again
updates its row only when Conekta changed it (a status moving from pending to paid_out), so a
second pull changes nothing. Conekta's statuses change after creation: the lookback reads the
last days again. The worker runs it every CONEKTA_SETTLE_INTERVAL when CONEKTA_API_KEY is set.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog

from core.errors import ApiKeyRejected
from core.settings import Settings
from store import Store
from worker import metrics, schedule, settlement_check
from worker.conekta_api import ConektaApi

log = structlog.get_logger(__name__)

LOOKBACK = timedelta(days=3)
KINDS = ("transactions", "transfers")


@dataclass(frozen=True)
class TransactionRow:
    id: str
    livemode: bool
    type: str
    status: str
    amount: int
    fee: int
    net: int
    charge_id: str | None
    currency: str
    created_at: datetime
    raw: str


@dataclass(frozen=True)
class TransferRow:
    id: str
    livemode: bool
    amount: int
    currency: str
    status: str
    statement_reference: str | None
    created_at: datetime
    raw: str


@dataclass
class PullReport:
    seen: Counter[str] = field(default_factory=Counter)
    new: Counter[str] = field(default_factory=Counter)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # records of an unusable shape
    pages: int = 0
    balance_taken_at: datetime | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "seen": dict(self.seen),
            "new": dict(self.new),
            "skipped": self.skipped,
            "pages": self.pages,
            "balance_taken_at": self.balance_taken_at.isoformat()
            if self.balance_taken_at
            else None,
        }


def _time(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"created_at {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _cents(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} {value!r}")
    return value


def transaction_row(record: Mapping[str, Any]) -> TransactionRow:
    """A transaction_response as a row; ValueError naming the field when it cannot be one."""
    amount, fee = _cents(record.get("amount"), "amount"), _cents(record.get("fee", 0), "fee")
    net = record.get("net")
    return TransactionRow(
        id=str(record["id"]),
        livemode=bool(record.get("livemode", True)),
        type=str(record.get("type") or "unknown"),
        status=str(record.get("status") or ""),
        amount=amount,
        fee=fee,
        net=_cents(net, "net") if net is not None else amount - fee,
        charge_id=str(record["charge"]) if record.get("charge") else None,
        currency=str(record.get("currency") or "MXN").upper(),
        created_at=_time(record.get("created_at")),
        raw=orjson.dumps(record).decode(),
    )


def transfer_row(record: Mapping[str, Any]) -> TransferRow:
    reference = record.get("statement_reference")
    return TransferRow(
        id=str(record["id"]),
        livemode=bool(record.get("livemode", True)),
        amount=abs(_cents(record.get("amount"), "amount")),
        currency=str(record.get("currency") or "MXN").upper(),
        status=str(record.get("status") or ""),
        statement_reference=str(reference) if reference else None,
        created_at=_time(record.get("created_at")),
        raw=orjson.dumps(record).decode(),
    )


PARSERS: dict[str, Callable[[Mapping[str, Any]], TransactionRow | TransferRow]] = {
    "transactions": transaction_row,
    "transfers": transfer_row,
}


async def pull(
    store: Store, api: ConektaApi, livemode: bool, *, since: datetime | None = None
) -> PullReport:
    """Transactions and transfers down to the watermark minus LOOKBACK (or `since`), then the
    balance (in the API key's mode, `livemode`)."""
    report = PullReport()
    for kind in KINDS:
        await _pull_kind(store, api, kind, livemode, since, report)
    balance = await api.balance()
    saved = await store.settlement.save_balance(livemode, balance)
    report.balance_taken_at = saved["taken_at"]
    return report


async def _pull_kind(
    store: Store,
    api: ConektaApi,
    kind: str,
    livemode: bool,
    since: datetime | None,
    report: PullReport,
) -> None:
    watermark = await store.settlement.watermark(kind, livemode)
    floor = since or (watermark - LOOKBACK if watermark else None)
    newest: datetime | None = None
    pages = api.transactions() if kind == "transactions" else api.transfers()
    async for page in pages:
        report.pages += 1
        rows = []
        for record in page.events:
            try:
                rows.append(PARSERS[kind](record))
            except (KeyError, ValueError, TypeError) as exc:
                report.skipped.append({"kind": kind, "id": record.get("id"), "why": str(exc)})
        report.seen[kind] += len(rows)
        report.new[kind] += await store.settlement.save(kind, rows)
        if rows:
            newest = max([newest or rows[0].created_at, *(r.created_at for r in rows)])
        if floor is not None and rows and min(r.created_at for r in rows) < floor:
            break
    if newest is not None:
        await store.settlement.advance_watermark(kind, livemode, newest)


async def run_scheduled(store: Store, settings: Settings, stop: asyncio.Event) -> None:
    """`settle pull` every `settle_interval` while the worker runs; a failure is logged,
    counted and retried with backoff."""
    assert settings.conekta_api_key is not None
    metrics.SETTLE_ENABLED.set(1)
    async with ConektaApi.open(settings.conekta_api_url, settings.conekta_api_key) as api:
        await schedule.repeat(
            lambda: _scheduled_run(store, api, settings), settings.settle_interval, stop
        )


async def _scheduled_run(store: Store, api: ConektaApi, settings: Settings) -> bool:
    """One pull (unless another worker's runs), then `settle verify` for the alerts; False
    when the pull failed."""
    try:
        async with store.settlement.pulling() as mine:
            if not mine:
                metrics.SETTLE_RUNS.labels("skipped").inc()
                return True
            report = await pull(store, api, settings.conekta_api_livemode)
    except ApiKeyRejected as exc:
        log.error("settle pull failed: fix CONEKTA_API_KEY", error=str(exc))
        metrics.SETTLE_RUNS.labels("failed").inc()
        return False
    except Exception as exc:
        log.warning("settle pull failed", error=f"{type(exc).__name__}: {exc}")
        metrics.SETTLE_RUNS.labels("failed").inc()
        return False
    metrics.SETTLE_RUNS.labels("ok").inc()
    metrics.SETTLE_LAST_SUCCESS.set(datetime.now(UTC).timestamp())
    for kind, count in report.new.items():
        metrics.SETTLE_RECORDS.labels(kind).inc(count)
    log.info("settle pull", **report.summary())
    await _measure(store, settings)
    return True


async def _measure(store: Store, settings: Settings) -> None:
    """The gauges the settlement alerts read: money in transit, broken invariants."""
    for row in await store.ledger.balances(at=None, livemode=None):
        if row["account"] == "conekta:in_transit":
            labels = (row["currency"], "true" if row["livemode"] else "false")
            metrics.SETTLE_IN_TRANSIT.labels(*labels).set(row["balance"])
    result = await settlement_check.verify(
        store,
        now=datetime.now(UTC),
        tax_rate=settings.fee_tax_rate,
        tz=settings.ledger_tz,
        livemode=settings.conekta_api_livemode,
    )
    broken = Counter(b.invariant for b in result.broken)
    for invariant in settlement_check.INVARIANTS:
        metrics.SETTLE_BROKEN.labels(str(invariant)).set(broken[invariant])
    if broken:
        log.warning("settle verify: broken", **{f"invariant_{k}": v for k, v in broken.items()})
