"""The read side: one order, the balances, the entries, and the ledger's proof of its own
invariants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store import Store


async def order(store: Store, order_id: str) -> dict[str, Any] | None:
    row = await store.orders.get(order_id)
    if row is None:
        return None
    result = dict(row)
    result["last_event_created_at"] = row["last_event_created_at"].isoformat()
    result["updated_at"] = row["updated_at"].isoformat()
    money = await store.orders.money(order_id)
    result["refunded_amount"] = money["refunded_amount"] if money else 0
    result["chargebacks"] = [
        {"id": c["id"], "status": c["status"], "amount": c["amount"], "charge_id": c["charge_id"]}
        for c in await store.orders.chargebacks(order_id)
    ]
    result["events"] = [
        {
            "event_id": e["event_id"],
            "type": e["type"],
            "outcome": e["outcome"],
            "created_at": e["created_at"].isoformat(),
        }
        for e in await store.orders.events(order_id)
    ]
    return result


async def balances(
    store: Store, *, at: datetime | None = None, livemode: bool | None = None
) -> list[dict[str, Any]]:
    """Balances in cents, positive on each account's normal side; as of `at` (by when the money
    moved) when given; one mode, or both."""
    return [
        {
            "account": r["account"],
            "currency": r["currency"],
            "livemode": r["livemode"],
            "balance": r["balance"],
        }
        for r in await store.ledger.balances(at=at, livemode=livemode)
    ]


ENTRY_FIELDS = (
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
)


async def entries(
    store: Store,
    *,
    account: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    livemode: bool | None = None,
) -> list[dict[str, Any]]:
    """Ledger entries for accountants (amount signed: debit +, credit -), by effective date."""
    rows = await store.ledger.entries(account=account, since=since, until=until, livemode=livemode)
    return [
        {
            name: (r[name].isoformat() if isinstance(r[name], datetime) else r[name])
            for name in ENTRY_FIELDS
        }
        for r in rows
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


async def verify(store: Store) -> list[tuple[Check, list[dict[str, Any]]]]:
    """Each check with the rows that violate it (empty when it holds)."""
    results = await store.ledger.violations([check.query for check in CHECKS])
    return [(check, [dict(r) for r in rows]) for check, rows in zip(CHECKS, results, strict=True)]
