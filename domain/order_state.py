"""Whether an event changes an order's status: statuses move forward only.

Pure. Events arrive late, twice and out of order. Each status has a rank; an event applies when
(rank, Conekta's created_at, event id) is above the current one, so every order of arrival ends
in the same status:

    pending_payment, declined  <  expired, canceled, voided  <  paid  <  partially_refunded
    <  refunded

(within a rank the newer event wins). A chargeback has its own status beside the order's, and
no ranks: Conekta's latest state wins (by created_at, ties by event id: `is_newer`), because
won -> lost (pre-arbitration) and lost -> won (a reversal) really happen (domain/plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.fulfillment import OrderView
from domain.order_event import OrderEvent
from domain.outcome import Outcome

ORDER_RANK = {
    "pending_payment": 0,
    "declined": 0,
    "expired": 1,
    "canceled": 1,
    "voided": 1,
    "paid": 2,
    "partially_refunded": 3,
    "refunded": 4,
}
# Statuses that end an unpaid order; one of them reaching a paid order is a contradiction.
ENDING_STATUSES = frozenset({"expired", "canceled", "voided"})


@dataclass(frozen=True)
class OrderState:
    status: str
    last_event_id: str
    last_event_created_at: datetime


def rank(status: str) -> int:
    return ORDER_RANK.get(status, 0)


def decide(current: OrderState | None, status: str, created_at: datetime, event_id: str) -> Outcome:
    if current is None:
        return Outcome.APPLIED
    if current.status == status:
        return Outcome.DUPLICATE
    if (rank(status), created_at, event_id) > (
        rank(current.status),
        current.last_event_created_at,
        current.last_event_id,
    ):
        return Outcome.APPLIED
    return Outcome.STALE


def is_newer(current: OrderState, created_at: datetime, event_id: str) -> bool:
    """Later than the last event applied; Conekta's created_at has whole seconds, so ties are
    broken by event id."""
    return (created_at, event_id) > (current.last_event_created_at, current.last_event_id)


def is_contradiction(current: OrderState | None, status: str) -> bool:
    """An unpaid order's ending and a payment met on the same order: reconciliation's business."""
    if current is None:
        return False
    statuses = {current.status, status}
    return bool(statuses & ENDING_STATUSES) and rank(max(statuses, key=rank)) >= rank("paid")


@dataclass
class OrderRow:
    """An order as the plan writes it (store/apply.py)."""

    id: str
    status: str
    amount: int
    currency: str
    customer_key: str | None
    livemode: bool
    last_event_id: str
    last_event_created_at: datetime

    def state(self) -> OrderState:
        return OrderState(self.status, self.last_event_id, self.last_event_created_at)

    @classmethod
    def of(cls, event: OrderEvent, known: OrderView | None) -> OrderRow:
        """The order after `event` applied; a customer the event does not name stays as it was."""
        assert event.order_id is not None
        assert event.status is not None
        return cls(
            id=event.order_id,
            status=event.status,
            amount=event.amount,
            currency=event.currency,
            customer_key=event.customer_key or (known.customer_key if known else None),
            livemode=event.livemode,
            last_event_id=event.event_id,
            last_event_created_at=event.created_at,
        )
