"""The ledger for on-call and accountants: one order, the balances (typed by the chart of
accounts), the entries, closing a month, and the ledger's proof of its own invariants."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.database import Record
from domain import accounts, periods
from domain import refund as refund_rules
from ops.paging import decode_cursor, jsonable, page_of, page_size
from store import Store


async def order(store: Store, order_id: str, livemode: bool | None = None) -> dict[str, Any] | None:
    """The order of that mode (None: the live one if there is one, else the test one)."""
    row = await store.orders.get(order_id, livemode)
    if row is None:
        return None
    result = dict(row)
    livemode = bool(row["livemode"])
    result["last_event_created_at"] = row["last_event_created_at"].isoformat()
    result["updated_at"] = row["updated_at"].isoformat()
    money = await store.orders.money(order_id, livemode)
    result["refunded_amount"] = money["refunded_amount"] if money else 0
    result["chargebacks"] = [
        {
            "id": c["id"],
            "status": c["status"],
            "conekta_status": c["conekta_status"],
            "amount": c["amount"],  # its target: what Conekta withholds
            "charge_id": c["charge_id"],
        }
        for c in await store.orders.chargebacks(order_id, livemode)
    ]
    # Every refund as Conekta last said: a pending one is here, not in the ledger yet.
    result["refunds"] = [
        {
            "id": r["id"],
            "charge_id": r["charge_id"],
            "amount": r["amount"],
            "status": r["status"] or "moved",
            "state": refund_rules.state(r["status"]),
            "created_at": r["created_at"].isoformat(),
        }
        for r in await store.orders.refunds(order_id, livemode)
    ]
    result["reconcile"] = [
        {
            "reason": f["reason"],
            "event_id": f["event_id"],
            "flagged_at": f["flagged_at"].isoformat(),
        }
        for f in await store.orders.reconcile_flags(order_id, livemode)
    ]
    result["events"] = [
        {
            "event_id": e["event_id"],
            "type": e["type"],
            "outcome": e["outcome"],
            "created_at": e["created_at"].isoformat(),
        }
        for e in await store.orders.events(order_id, livemode)
    ]
    # The event that last changed it: the newest applied one (last_event_id is the newest the
    # order rules weighed, which may have been a duplicate that changed nothing).
    applied = [e for e in result["events"] if e["outcome"] == "applied"]
    result["last_change"] = applied[-1] if applied else None
    return result


async def balances(
    store: Store, *, at: datetime | None = None, livemode: bool | None = None
) -> list[dict[str, Any]]:
    """Balances in cents, positive on each account's normal side, with the account's type and
    how to read a negative one (`owed to Conekta`); as of `at` (by when the money moved) when
    given; one mode, or both."""
    return [
        {
            "account": r["account"],
            "type": r["type"],
            "currency": r["currency"],
            "livemode": r["livemode"],
            "balance": r["balance"],
            "reading": accounts.reading(r["account"], r["balance"]),
        }
        for r in await store.ledger.balances(at=at, livemode=livemode)
    ]


# One shape of an entry for the CLI (JSON, CSV) and the console (pages, API, CSV).
ENTRY_FIELDS = (
    "id",
    "effective_at",
    "recorded_at",
    "livemode",
    "business_key",
    "kind",
    "order_id",
    "charge_id",
    "event_id",
    "account",
    "currency",
    "amount",
    "occurred_at",  # last: the CSV's columns before it keep their places
)
CSV_PAGE = 2000
_FIRST = (datetime.min.replace(tzinfo=UTC), 0)  # before every entry


@dataclass(frozen=True)
class EntryFilter:
    account: str | None = None
    currency: str | None = None
    since: datetime | None = None  # the money moved (effective_at) at or after
    until: datetime | None = None  # ... before
    livemode: bool | None = None  # one mode, or both


async def entries_page(
    store: Store, selection: EntryFilter, cursor: str | None = None, limit: int = 100
) -> dict[str, Any]:
    """A page of entries by effective date (amount signed: debit +, credit -)."""
    after = decode_cursor(cursor, datetime, int) if cursor else _FIRST
    rows = await _entries(store, selection, after, page_size(limit) + 1)
    return page_of(rows, limit, lambda row: (row["effective_at"], row["id"]))


async def entry_pages(store: Store, selection: EntryFilter) -> AsyncIterator[list[Record]]:
    """Every matching entry, by effective date, a page at a time."""
    after = _FIRST
    while rows := await _entries(store, selection, after, CSV_PAGE):
        yield rows
        after = (rows[-1]["effective_at"], rows[-1]["id"])


async def all_entries(store: Store, selection: EntryFilter) -> list[dict[str, Any]]:
    return [jsonable(row) async for rows in entry_pages(store, selection) for row in rows]


async def entries_csv(store: Store, selection: EntryFilter) -> AsyncIterator[str]:
    """Every matching entry as CSV (header first), read and yielded a page at a time; cells that
    a spreadsheet would take for a formula are defused."""
    yield _csv_lines([ENTRY_FIELDS])
    async for rows in entry_pages(store, selection):
        yield _csv_lines([[_cell(value) for value in jsonable(row).values()] for row in rows])


def _csv_lines(rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _cell(value: object) -> object:
    """A text starting like a formula is defused for spreadsheets (CSV injection)."""
    if isinstance(value, str) and value[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + value
    return value


async def _entries(
    store: Store, selection: EntryFilter, after: tuple[datetime, int], limit: int
) -> list[Record]:
    return await store.ledger.entries(
        account=selection.account,
        currency=selection.currency,
        since=selection.since,
        until=selection.until,
        livemode=selection.livemode,
        after=after,
        limit=limit,
    )


async def close_month(
    store: Store, month: str, tz: ZoneInfo, actor: str, now: datetime
) -> dict[str, Any]:
    """Close a month (YYYY-MM, in `tz`) and every one before it, audited as `ledger.close` in
    the same transaction; BadRequest when it is not over yet or closed already."""
    first_day = periods.parse_month(month)
    async with store.ledger.closing() as claim:
        closed_before = periods.closing(first_day, tz, now, claim.closed_before)
        row = await claim.close(first_day, tz.key, closed_before, actor)
        await claim.audit(
            actor,
            "ledger.close",
            1,
            {"target": f"{first_day:%Y-%m}", "time_zone": tz.key, "closed_before": closed_before},
        )
    return {
        "month": f"{first_day:%Y-%m}",
        "time_zone": tz.key,
        "closed_before": closed_before.isoformat(),
        "closed_at": row["closed_at"].isoformat(),
        "actor": actor,
    }


async def closes(store: Store) -> list[dict[str, Any]]:
    """Every close, newest first."""
    return [
        {
            "month": f"{r['month']:%Y-%m}",
            "time_zone": r["time_zone"],
            "closed_before": r["closed_before"].isoformat(),
            "closed_at": r["closed_at"].isoformat(),
            "actor": r["actor"],
        }
        for r in await store.ledger.closes()
    ]


@dataclass(frozen=True)
class Check:
    query: str
    description: str


CHECKS = (
    Check("verify_unbalanced_transactions", "every ledger transaction balances (and has entries)"),
    Check("verify_balances_match_entries", "every balance equals the sum of its entries"),
    Check("verify_currency_totals", "balances sum to zero per currency"),
    Check("verify_one_payment_per_charge", "at most one payment posting per charge"),
    Check("verify_refunds_within_payment", "refunds per charge are at most what it paid"),
    Check(
        "verify_disputed_matches_open_chargebacks",
        "the disputed balance equals the open chargebacks",
    ),
    Check("verify_money_on_unpaid_orders", "no money on orders that were never paid"),
    Check("verify_paid_orders_without_payment", "every paid order has its payment posted"),
)


# Not failures: the money is booked as Conekta said; someone should look.
WARNINGS = (
    Check("warn_fee_unknown", "paid charges whose fee no event carried, 3 days after payment"),
    Check("warn_overpaid_orders", "orders whose paid charges add up to more than their amount"),
    Check("warn_reconcile_flags", "orders waiting for reconcile (a list said has_more)"),
)


async def verify(store: Store) -> list[tuple[Check, list[dict[str, Any]]]]:
    """Each check with the rows that violate it (empty when it holds)."""
    return await _run(store, CHECKS)


async def warnings(store: Store) -> list[tuple[Check, list[dict[str, Any]]]]:
    """Each warning with the rows it found (empty: nothing to look at); never a failure."""
    return await _run(store, WARNINGS)


async def _run(store: Store, checks: tuple[Check, ...]) -> list[tuple[Check, list[dict[str, Any]]]]:
    results = await store.ledger.violations([check.query for check in checks])
    return [(check, [dict(r) for r in rows]) for check, rows in zip(checks, results, strict=True)]
