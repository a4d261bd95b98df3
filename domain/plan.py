"""What a batch of events changes, decided in memory against the locked state; pure.

The database work (store/apply.py, `store.apply.batch`) loads what the batch touches (orders,
booked charges, business keys already posted, chargebacks), and only writes what the plan says.
An event is `applied` when it moves an order's or a chargeback's status forward, or posts money
not posted before; money is posted from whatever event carries it, once per business key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from core.errors import UnapplicableEvent, UnknownCharge
from domain import fulfillment, ledger
from domain.archive import ArchiveRow
from domain.order_event import OrderEvent
from domain.order_state import OrderState, decide, is_contradiction, is_newer
from domain.outcome import Outcome
from domain.provenance import SIGNED

ALL_MODES = frozenset({True, False})
# Orders and chargebacks are keyed by (livemode, id): Conekta's test and live modes may use the
# same id, and their states, like their money, never meet.
Key = tuple[bool, str]


@dataclass(frozen=True)
class Incoming:
    event: OrderEvent
    body: bytes
    received_at: datetime | None
    request: Mapping[str, Any] | None = field(default=None, hash=False)  # domain.archive
    # domain.provenance: what vouches for the body. The consumers set it after verifying the
    # DIGEST (`signed`), reconcile and order fetches say `api`, `orders record` `attested:<user>`.
    provenance: str = SIGNED

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def order_id(self) -> str | None:
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
class ChargebackRow:
    id: str
    livemode: bool
    charge_id: str
    order_id: str
    status: str
    amount: int
    currency: str
    last_event_id: str
    last_event_created_at: datetime

    def state(self) -> OrderState:
        return OrderState(self.status, self.last_event_id, self.last_event_created_at)


@dataclass(frozen=True)
class Booked:
    """What the database already holds for the batch (the orders locked)."""

    orders: Mapping[Key, OrderState] = field(default_factory=dict)
    archived_ids: Collection[str] = ()
    keys: Collection[tuple[bool, str]] = ()  # (livemode, business key) already posted
    charges: Mapping[tuple[bool, str], ledger.Charge] = field(default_factory=dict)
    chargebacks: Mapping[Key, OrderState] = field(default_factory=dict)
    order_views: Mapping[Key, fulfillment.OrderView] = field(default_factory=dict)


@dataclass
class Plan:
    outcomes: list[Outcome] = field(default_factory=list)  # per incoming, in order
    new_orders: dict[Key, OrderRow] = field(default_factory=dict)
    changed_orders: dict[Key, OrderRow] = field(default_factory=dict)
    postings: dict[tuple[bool, str], ledger.Posting] = field(default_factory=dict)
    chargebacks: dict[Key, ChargebackRow] = field(default_factory=dict)
    archive: list[ArchiveRow] = field(default_factory=list)
    messages: list[fulfillment.FulfillmentMessage] = field(default_factory=list)
    contradictions: list[OrderEvent] = field(default_factory=list)


class _Batch:
    """The state as the batch moves it, event by event."""

    def __init__(self, booked: Booked) -> None:
        self.booked = booked
        self.orders: dict[Key, OrderState] = dict(booked.orders)
        self.views: dict[Key, fulfillment.OrderView] = dict(booked.order_views)
        self.charges: dict[tuple[bool, str], ledger.Charge] = dict(booked.charges)
        self.chargebacks: dict[Key, OrderState] = dict(booked.chargebacks)
        self.seen = set(booked.archived_ids)
        self.refunded = {key: charge.refunded for key, charge in booked.charges.items()}
        self.plan = Plan()

    def posted(self, key: tuple[bool, str]) -> bool:
        return key in self.booked.keys or key in self.plan.postings


def plan_batch(
    items: Sequence[Incoming], booked: Booked, modes: Iterable[bool] = ALL_MODES
) -> Plan:
    batch = _Batch(booked)
    accepted = frozenset(modes)
    for item in items:
        event = item.event
        if event.event_id in batch.seen:
            batch.plan.outcomes.append(Outcome.REDELIVERED)
            continue
        batch.seen.add(event.event_id)
        if event.livemode not in accepted:
            outcome, order_id = Outcome.OTHER_MODE, event.order_id
        else:
            outcome, order_id = _apply(batch, event, item.provenance)
        batch.plan.outcomes.append(outcome)
        batch.plan.archive.append(_archive_row(item, outcome, order_id))
    return batch.plan


def _apply(batch: _Batch, event: OrderEvent, provenance: str) -> tuple[Outcome, str]:
    if event.is_charge_event:
        charge = batch.charges.get((event.livemode, event.charge_id or ""))
        if charge is None:
            raise UnknownCharge(f"charge {event.charge_id} is not booked (yet)")
        order_id = charge.order_id
        postings = _charge_event_postings(batch, event, charge)
        status_outcome = _chargeback_status(batch, event, charge)
    else:
        assert event.order_id is not None
        assert event.status is not None
        order_id = event.order_id
        postings = _order_event_postings(batch, event)
        status_outcome = _order_status(batch, event)
    new = [replace(p, provenance=provenance) for p in postings if not batch.posted(p.key)]
    _check_refunds(batch, new)
    for posting in new:
        batch.plan.postings[posting.key] = posting
    outcome = Outcome.APPLIED if new else status_outcome
    if outcome is Outcome.APPLIED:
        view = batch.views.get((event.livemode, order_id)) or _event_view(event)
        if view is not None:
            batch.plan.messages.append(fulfillment.build(event, view))
    return outcome, order_id


def _check_refunds(batch: _Batch, postings: Sequence[ledger.Posting]) -> None:
    """Refunds of a charge (across events: each names its own refund ids) never add up to more
    than it paid; an event that would make them is not applied (permanent: dead letter)."""
    for posting in postings:
        if posting.kind != ledger.REFUND:
            continue
        key = (posting.livemode, posting.charge_id)
        total = batch.refunded.get(key, 0) + posting.amount
        paid = batch.charges[key].amount
        if total > paid:
            raise UnapplicableEvent(
                f"refunds of charge {posting.charge_id} would add up to {total},"
                f" more than its {paid}"
            )
        batch.refunded[key] = total


def _order_event_postings(batch: _Batch, event: OrderEvent) -> list[ledger.Posting]:
    postings = []
    for paid in event.paid_charges:
        assert event.order_id is not None
        assert event.customer_key is not None
        charge = ledger.Charge(
            paid.id, event.order_id, paid.amount, event.currency, event.livemode, event.customer_key
        )
        # Once booked, a charge's customer is fixed: its refunds return money to that account.
        charge = batch.charges.setdefault((event.livemode, paid.id), charge)
        postings.append(ledger.payment(paid, charge, event.event_id, event.created_at))
        postings += [ledger.refund(r, charge, event.event_id) for r in paid.refunds]
    return postings


def _charge_event_postings(
    batch: _Batch, event: OrderEvent, charge: ledger.Charge
) -> list[ledger.Posting]:
    if event.chargeback is None:  # charge.refunded
        return [
            ledger.refund(r, charge, event.event_id)
            for paid in event.paid_charges
            for r in paid.refunds
        ]
    chbk = event.chargeback
    postings = [ledger.chargeback(chbk.id, "opened", charge, event.event_id, chbk.created_at)]
    if chbk.status in {"won", "lost"}:
        other = "lost" if chbk.status == "won" else "won"
        if not batch.posted((event.livemode, ledger.chargeback_key(chbk.id, other))):
            postings.append(
                ledger.chargeback(chbk.id, chbk.status, charge, event.event_id, event.created_at)
            )
    return postings


def _order_status(batch: _Batch, event: OrderEvent) -> Outcome:
    assert event.order_id is not None
    assert event.status is not None
    key = (event.livemode, event.order_id)
    state = batch.orders.get(key)
    outcome = decide(state, event.status, event.created_at, event.event_id)
    if is_contradiction(state, event.status):
        batch.plan.contradictions.append(event)
    # A newer event with the same status changes nothing visible, but the order's clock
    # moves on, so an older event of another status arriving later stays stale.
    newer_duplicate = (
        outcome is Outcome.DUPLICATE
        and state is not None
        and is_newer(state, event.created_at, event.event_id)
    )
    if outcome is Outcome.APPLIED or newer_duplicate:
        row = _order_row(event, batch.views.get(key))
        batch.orders[key] = row.state()
        batch.views[key] = fulfillment.OrderView(
            row.id, row.status, row.amount, row.currency, row.customer_key, row.livemode
        )
        known = key in batch.booked.orders
        target = batch.plan.changed_orders if known else batch.plan.new_orders
        target[key] = row
    return outcome


def _chargeback_status(batch: _Batch, event: OrderEvent, charge: ledger.Charge) -> Outcome:
    chbk = event.chargeback
    if chbk is None:
        return Outcome.DUPLICATE  # charge.refunded: money only, no status of its own
    key = (event.livemode, chbk.id)
    state = batch.chargebacks.get(key)
    outcome = decide(state, chbk.status, event.created_at, event.event_id)
    if outcome is Outcome.APPLIED:
        row = ChargebackRow(
            chbk.id,
            event.livemode,
            charge.id,
            charge.order_id,
            chbk.status,
            charge.amount,
            charge.currency,
            event.event_id,
            event.created_at,
        )
        batch.chargebacks[key] = row.state()
        batch.plan.chargebacks[key] = row
    return outcome


def _event_view(event: OrderEvent) -> fulfillment.OrderView | None:
    if event.order_id is None or event.status is None:
        return None
    return fulfillment.OrderView(
        event.order_id,
        event.status,
        event.amount,
        event.currency,
        event.customer_key,
        event.livemode,
    )


def _archive_row(item: Incoming, outcome: Outcome, order_id: str | None) -> ArchiveRow:
    event = item.event
    return ArchiveRow(
        event.event_id,
        event.type,
        order_id,
        event.livemode,
        event.created_at,
        item.received_at,
        outcome,
        item.body,
        request=item.request,
        provenance=item.provenance,
    )


def _order_row(event: OrderEvent, known: fulfillment.OrderView | None) -> OrderRow:
    assert event.order_id is not None
    assert event.status is not None
    return OrderRow(
        id=event.order_id,
        status=event.status,
        amount=event.amount,
        currency=event.currency,
        customer_key=event.customer_key or (known.customer_key if known else None),
        livemode=event.livemode,
        last_event_id=event.event_id,
        last_event_created_at=event.created_at,
    )
