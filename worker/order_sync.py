"""Orders against Conekta's own record: `verify` compares the projection with `GET /orders/{id}`
and reports every difference (it never rewrites anything; `--fix` reconciles); `record` books the
answer of `POST /orders` through the worker's apply path, as the operator's attested word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.checkout import event_from_order
from domain.order_event import parse_order_event
from domain.outcome import Outcome
from domain.plan import Incoming
from domain.provenance import attested
from store import Store
from worker import orders
from worker.conekta_api import ConektaApi

# Projection column -> the field of Conekta's order it must equal. Refunds and chargebacks are
# compared once the projection has them (a column of that name).
COMPARED = {
    "status": "payment_status",
    "amount": "amount",
    "currency": "currency",
    "amount_refunded": "amount_refunded",
    "charged_back": "charged_back",
}


@dataclass(frozen=True)
class Difference:
    order_id: str
    field: str
    ours: object
    conekta: object

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compare(
    order_id: str, ours: Mapping[str, Any] | None, theirs: Mapping[str, Any] | None
) -> list[Difference]:
    """Every field where the projection and Conekta's order disagree; pure."""
    if ours is None or theirs is None:
        if ours is None and theirs is None:
            return [Difference(order_id, "order", None, None)]
        return [
            Difference(
                order_id,
                "order",
                ours["status"] if ours else None,
                theirs.get("payment_status") if theirs else None,
            )
        ]
    return [
        Difference(order_id, column, ours[column], theirs.get(field))
        for column, field in COMPARED.items()
        if column in ours and ours[column] != theirs.get(field)
    ]


async def verify(
    store: Store, api: ConektaApi, order_ids: list[str]
) -> tuple[list[Difference], dict[str, int]]:
    """Differences of each order, and Conekta's `created_at` of those that differ (for --fix)."""
    differences: list[Difference] = []
    created: dict[str, int] = {}
    for order_id in order_ids:
        theirs = await api.order(order_id)
        # The order of the mode Conekta answers in (its key's mode): a test order of the same id
        # is another order.
        mode = theirs.get("livemode") if theirs else None
        ours = await store.orders.get(order_id, mode if isinstance(mode, bool) else None)
        found = compare(order_id, dict(ours) if ours else None, theirs)
        differences.extend(found)
        if found and theirs and isinstance(theirs.get("created_at"), int):
            created[order_id] = theirs["created_at"]
    return differences, created


async def record(store: Store, order: Any, actor: str) -> tuple[str, Outcome]:
    """Book a `POST /orders` answer; (its event id, the outcome). Idempotent.

    The file is an operator's word, not Conekta's signature: what it posts is `attested:<actor>`
    (domain.provenance), audited by the command, and listed by `ledger verify --provenance`
    until a signed event or an API record of the same money confirms it."""
    body = event_from_order(order)
    event = parse_order_event(body)
    item = Incoming(event, body, datetime.now(UTC), provenance=attested(actor))
    [outcome] = orders.report(await store.apply.batch([item]))
    return event.event_id, outcome
