"""What a batch of order events changes, decided in memory against the locked order states; pure.

The database work (worker/store.py, `Store.apply_batch`) only writes what the plan says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from domain import fulfillment, ledger
from domain.archive import ArchiveRow
from domain.order_event import OrderEvent
from domain.order_state import OrderState, decide, is_newer
from domain.outcome import Outcome


@dataclass(frozen=True)
class Incoming:
    event: OrderEvent
    body: bytes
    received_at: datetime | None

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def order_id(self) -> str:
        return self.event.order_id


@dataclass
class OrderRow:
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


@dataclass
class Plan:
    outcomes: list[Outcome] = field(default_factory=list)  # per incoming, in order
    new_orders: dict[str, OrderRow] = field(default_factory=dict)
    changed_orders: dict[str, OrderRow] = field(default_factory=dict)
    postings: dict[str, ledger.Posting] = field(default_factory=dict)  # by business key
    archive: list[ArchiveRow] = field(default_factory=list)
    messages: list[fulfillment.FulfillmentMessage] = field(default_factory=list)


def plan_batch(
    items: Sequence[Incoming],
    current: Mapping[str, OrderState],
    archived_ids: Iterable[str],
) -> Plan:
    plan = Plan()
    seen = set(archived_ids)
    states: dict[str, OrderState] = dict(current)
    for item in items:
        event = item.event
        if event.event_id in seen:
            plan.outcomes.append(Outcome.REDELIVERED)
            continue
        seen.add(event.event_id)
        state = states.get(event.order_id)
        outcome = decide(state, event.status, event.created_at, event.event_id)
        plan.outcomes.append(outcome)
        plan.archive.append(_archive_row(item, outcome))
        for posting in ledger.payment_postings(event):
            plan.postings.setdefault(posting.business_key, posting)
        # A newer event with the same status changes nothing visible, but the order's clock
        # moves on, so an older event of another status arriving later stays stale.
        newer_duplicate = (
            outcome is Outcome.DUPLICATE
            and state is not None
            and is_newer(state, event.created_at, event.event_id)
        )
        if outcome is Outcome.APPLIED or newer_duplicate:
            row = _row(event)
            states[event.order_id] = row.state()
            target = plan.changed_orders if event.order_id in current else plan.new_orders
            target[event.order_id] = row
        if outcome is Outcome.APPLIED:
            plan.messages.append(fulfillment.build(event))
    return plan


def _archive_row(item: Incoming, outcome: Outcome) -> ArchiveRow:
    event = item.event
    return ArchiveRow(
        event.event_id,
        event.type,
        event.order_id,
        event.livemode,
        event.created_at,
        item.received_at,
        outcome,
        item.body,
    )


def _row(event: OrderEvent) -> OrderRow:
    return OrderRow(
        id=event.order_id,
        status=event.status,
        amount=event.amount,
        currency=event.currency,
        customer_key=event.customer_key,
        livemode=event.livemode,
        last_event_id=event.event_id,
        last_event_created_at=event.created_at,
    )
