"""The read side: one order, the balances, and the ledger's proof of its own invariants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.store import Store


async def order(store: Store, order_id: str) -> dict[str, Any] | None:
    row = await store.order(order_id)
    if row is None:
        return None
    result = dict(row)
    result["last_event_created_at"] = row["last_event_created_at"].isoformat()
    result["updated_at"] = row["updated_at"].isoformat()
    result["events"] = [
        {
            "event_id": e["event_id"],
            "type": e["type"],
            "outcome": e["outcome"],
            "created_at": e["created_at"].isoformat(),
        }
        for e in await store.order_events(order_id)
    ]
    return result


async def balances(store: Store) -> list[dict[str, Any]]:
    """Balances in cents, positive on each account's normal side."""
    return [
        {"account": r["account"], "currency": r["currency"], "balance": r["balance"]}
        for r in await store.balances()
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
    Check("verify_payments_of_unpaid_orders", "payments are posted only for paid orders"),
    Check("verify_paid_orders_without_payment", "every paid order has its payment posted"),
)


async def verify(store: Store) -> list[tuple[Check, list[dict[str, Any]]]]:
    """Each check with the rows that violate it (empty when it holds)."""
    results = await store.violations([check.query for check in CHECKS])
    return [(check, [dict(r) for r in rows]) for check, rows in zip(CHECKS, results, strict=True)]
