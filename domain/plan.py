"""What a batch of events changes, decided in memory against the locked state; pure.

The database work (store/apply.py, `store.apply.batch`) loads what the batch touches (orders,
booked charges, their refunds and chargebacks with what their postings hold, business keys
already posted), and only writes what the plan says. An event is `applied` when it moves an
order's, a refund's or a chargeback's status forward, or posts money not posted before; money is
posted from whatever event carries it, once per business key. The money rules:
domain/ledger.py (postings), domain/refund.py, domain/chargeback.py, domain/fee.py.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from core.errors import (
    ConektaIngestError,
    CurrencyMismatch,
    UnapplicableEvent,
    UndecidableEvent,
    UnknownCharge,
)
from domain import chargeback as chargeback_rules
from domain import fee as fee_rules
from domain import fulfillment, ledger
from domain import refund as refund_rules
from domain.archive import ArchiveRow
from domain.money_rows import ChargebackRow, ChargebackState, ReconcileFlag, RefundRow
from domain.order_event import Chargeback, OrderEvent, PaidCharge, Refund
from domain.order_state import OrderRow, OrderState, decide, is_contradiction, is_newer
from domain.outcome import Outcome
from domain.provenance import SIGNED

ALL_MODES = frozenset({True, False})
NEVER = datetime.fromtimestamp(0, UTC)  # no Conekta event is older (unix time)
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


@dataclass(frozen=True)
class Booked:
    """What the database already holds for the batch (the orders locked)."""

    orders: Mapping[Key, OrderState] = field(default_factory=dict)
    archived_ids: Collection[str] = ()
    keys: Collection[tuple[bool, str]] = ()  # (livemode, business key) already posted
    charges: Mapping[tuple[bool, str], ledger.Charge] = field(default_factory=dict)
    chargebacks: Mapping[Key, ChargebackState] = field(default_factory=dict)
    order_views: Mapping[Key, fulfillment.OrderView] = field(default_factory=dict)
    # (livemode, refund id): the refunds of the batch's charges
    refunds: Mapping[tuple[bool, str], RefundRow] = field(default_factory=dict)


@dataclass
class Plan:
    outcomes: list[Outcome] = field(default_factory=list)  # per incoming, in order
    new_orders: dict[Key, OrderRow] = field(default_factory=dict)
    changed_orders: dict[Key, OrderRow] = field(default_factory=dict)
    postings: dict[tuple[bool, str], ledger.Posting] = field(default_factory=dict)
    charges: dict[tuple[bool, str], ledger.Charge] = field(default_factory=dict)  # new, fee learnt
    refunds: dict[tuple[bool, str], RefundRow] = field(default_factory=dict)
    chargebacks: dict[Key, ChargebackRow] = field(default_factory=dict)
    archive: list[ArchiveRow] = field(default_factory=list)
    messages: list[fulfillment.FulfillmentMessage] = field(default_factory=list)
    contradictions: list[OrderEvent] = field(default_factory=list)
    overpaid: list[OrderEvent] = field(default_factory=list)  # applied, flagged
    flags: list[ReconcileFlag] = field(default_factory=list)
    # isolate=True: the events that could not be decided, by their index in the batch, with
    # why (retry or dead letter decides by the error); the plan holds the others only.
    failed: dict[int, ConektaIngestError] = field(default_factory=dict)


class _Failed(Exception):
    """One event of the batch could not be decided: plan again without it."""

    def __init__(self, index: int, error: ConektaIngestError) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


class _Batch:
    """The state as the batch moves it, event by event."""

    def __init__(self, booked: Booked, fee_tax_rate: Decimal) -> None:
        self.booked = booked
        self.fee_tax_rate = fee_tax_rate
        self.orders: dict[Key, OrderState] = dict(booked.orders)
        self.views: dict[Key, fulfillment.OrderView] = dict(booked.order_views)
        self.charges: dict[tuple[bool, str], ledger.Charge] = dict(booked.charges)
        self.chargebacks: dict[Key, ChargebackState] = dict(booked.chargebacks)
        self.refunds: dict[tuple[bool, str], RefundRow] = dict(booked.refunds)
        self.seen = set(booked.archived_ids)
        self.plan = Plan()

    def posted(self, key: tuple[bool, str]) -> bool:
        return key in self.booked.keys or key in self.plan.postings

    def book_charge(self, charge: ledger.Charge) -> None:
        self.charges[(charge.livemode, charge.id)] = charge
        self.plan.charges[(charge.livemode, charge.id)] = charge

    def book_refund(self, row: RefundRow) -> None:
        self.refunds[(row.livemode, row.id)] = row
        self.plan.refunds[(row.livemode, row.id)] = row

    def book_chargeback(self, state: ChargebackState) -> None:
        key = (state.row.livemode, state.row.id)
        self.chargebacks[key] = state
        self.plan.chargebacks[key] = state.row

    def refunds_of(self, charge: ledger.Charge) -> list[RefundRow]:
        return [
            r
            for r in self.refunds.values()
            if r.charge_id == charge.id and r.livemode == charge.livemode
        ]


def plan_batch(
    items: Sequence[Incoming],
    booked: Booked,
    modes: Iterable[bool] = ALL_MODES,
    fee_tax_rate: Decimal = fee_rules.DEFAULT_TAX_RATE,
    *,
    isolate: bool = False,
) -> Plan:
    """The batch's plan. An event that cannot be decided raises its error, or with `isolate`
    is left out (in `Plan.failed`, by index) and the rest planned again without it: one event's
    error never fails its batch, and what it half-decided is dropped with it."""
    accepted = frozenset(modes)
    failed: dict[int, ConektaIngestError] = {}
    while True:
        kept = [(i, item) for i, item in enumerate(items) if i not in failed]
        try:
            plan = _plan(kept, booked, accepted, fee_tax_rate)
        except _Failed as exc:
            index, error = exc.index, exc.error
        else:
            plan.failed = failed
            return plan
        if not isolate:
            raise error
        failed[index] = error


def _plan(
    items: Sequence[tuple[int, Incoming]],
    booked: Booked,
    accepted: frozenset[bool],
    fee_tax_rate: Decimal,
) -> Plan:
    batch = _Batch(booked, fee_tax_rate)
    for index, item in items:
        event = item.event
        if event.event_id in batch.seen:
            batch.plan.outcomes.append(Outcome.REDELIVERED)
            continue
        batch.seen.add(event.event_id)
        if event.livemode not in accepted:
            outcome, order_id = Outcome.OTHER_MODE, event.order_id
        else:
            try:
                outcome, order_id = _apply(batch, event, item.provenance)
            except ConektaIngestError as exc:
                raise _Failed(index, exc) from None
            except Exception as exc:
                raise _Failed(index, UndecidableEvent.of(exc)) from exc
        batch.plan.outcomes.append(outcome)
        batch.plan.archive.append(_archive_row(item, outcome, order_id))
    return batch.plan


def _apply(batch: _Batch, event: OrderEvent, provenance: str) -> tuple[Outcome, str]:
    chargeback_status = None
    if event.is_charge_event:
        charge = batch.charges.get((event.livemode, event.charge_id or ""))
        if charge is None:
            raise UnknownCharge(f"charge {event.charge_id} is not booked (yet)")
        order_id = charge.order_id
        if event.chargeback is None:  # charge.refunded: money only, no status of its own
            _check_currency(event, charge)
            charge, postings = _learn_fee(batch, event, charge, event.paid_charges[0])
            money, changed = _charge_money(batch, event, charge, event.paid_charges[0])
            postings += money
            status_outcome = Outcome.APPLIED if changed else Outcome.DUPLICATE
        else:
            postings, status_outcome = _chargeback_event(batch, event, charge)
            state = batch.chargebacks[(event.livemode, event.chargeback.id)]
            chargeback_status = state.row.conekta_status
    else:
        assert event.order_id is not None
        order_id = event.order_id
        postings, changed = _order_event_money(batch, event)
        status_outcome = _order_status(batch, event)
        if changed and status_outcome is not Outcome.APPLIED:
            status_outcome = Outcome.APPLIED
        if event.overpaid:
            batch.plan.overpaid.append(event)
    new = [p.vouched_by(provenance) for p in postings if not batch.posted(p.key)]
    for posting in new:
        batch.plan.postings[posting.key] = posting
    for reason in event.incomplete:
        batch.plan.flags.append(ReconcileFlag(event.livemode, order_id, event.event_id, reason))
    outcome = Outcome.APPLIED if new else status_outcome
    if outcome is Outcome.APPLIED:
        view = batch.views.get((event.livemode, order_id)) or fulfillment.OrderView.of(event)
        if view is not None:
            batch.plan.messages.append(fulfillment.build(event, view, chargeback_status))
    return outcome, order_id


def _check_currency(event: OrderEvent, charge: ledger.Charge) -> None:
    if event.currency != charge.currency:
        raise CurrencyMismatch(
            f"{event.type} for charge {charge.id} is in {event.currency},"
            f" the charge was paid in {charge.currency}"
        )


def _order_event_money(batch: _Batch, event: OrderEvent) -> tuple[list[ledger.Posting], bool]:
    postings: list[ledger.Posting] = []
    changed = False
    for paid in event.paid_charges:
        charge, booked = _book_payment(batch, event, paid)
        postings += booked
        if paid.refunds:
            _check_currency(event, charge)
        money, refunds_changed = _charge_money(batch, event, charge, paid)
        postings += money
        changed = changed or refunds_changed
    return postings, changed


def _book_payment(
    batch: _Batch, event: OrderEvent, paid: PaidCharge
) -> tuple[ledger.Charge, list[ledger.Posting]]:
    """The payment of a charge not booked yet, and its fee once an event carries it."""
    assert event.order_id is not None
    charge = batch.charges.get((event.livemode, paid.id))
    if charge is not None:
        if charge.order_id != event.order_id:
            # A charge belongs to one order: booking it again elsewhere would mark this order
            # paid with no payment of its own (the fuzz found it: a sample's charge, renamed).
            raise UnapplicableEvent(
                f"charge {paid.id} is booked for order {charge.order_id}, not {event.order_id}"
            )
        return _learn_fee(batch, event, charge, paid)
    assert event.customer_key is not None
    charge = ledger.Charge(
        paid.id,
        event.order_id,
        paid.amount,
        event.currency,
        event.livemode,
        event.customer_key,  # fixed from now on: its refunds and chargebacks use it
        paid.fee,
        paid.paid_at or event.created_at,
    )
    batch.book_charge(charge)
    postings = [ledger.payment(paid, charge, event.event_id, event.created_at)]
    return charge, postings + _fee(batch, event, charge, paid.fee)


def _learn_fee(
    batch: _Batch, event: OrderEvent, charge: ledger.Charge, paid: PaidCharge
) -> tuple[ledger.Charge, list[ledger.Posting]]:
    """A booked charge whose fee was unknown, from the first event that carries it."""
    if charge.fee is not None or paid.fee is None:
        return charge, []
    charge = replace(charge, fee=paid.fee)
    batch.book_charge(charge)
    return charge, _fee(batch, event, charge, paid.fee)


def _fee(
    batch: _Batch, event: OrderEvent, charge: ledger.Charge, fee: int | None
) -> list[ledger.Posting]:
    if not fee:
        return []  # unknown, or known to be 0: nothing moves
    at = charge.paid_at or event.created_at  # Conekta takes it when the charge is paid
    return [ledger.fee_posting(charge, fee, batch.fee_tax_rate, event.event_id, at)]


def _charge_money(
    batch: _Batch, event: OrderEvent, charge: ledger.Charge, paid: PaidCharge
) -> tuple[list[ledger.Posting], bool]:
    """A charge's refunds as this event carries them, then its chargebacks' targets (a refund
    before a chargeback lowers it). Changed: a refund's state moved."""
    postings: list[ledger.Posting] = []
    changed = False
    # Failures first: a refund that replaces a failed one then fits within the charge.
    for refund in sorted(paid.refunds, key=lambda r: refund_rules.can_move(r.status)):
        moved = _refund(batch, event, charge, refund)
        if moved is not None:
            changed = True
            postings += moved
    _check_refunds(batch, charge)
    for state in list(batch.chargebacks.values()):
        row = state.row
        if row.charge_id == charge.id and row.livemode == charge.livemode:
            postings += _settle(batch, state, charge, event)
    return postings, changed


def _refund(
    batch: _Batch, event: OrderEvent, charge: ledger.Charge, refund: Refund
) -> list[ledger.Posting] | None:
    """The postings that take a refund's money to where its state says (None: no change)."""
    row = batch.refunds.get((event.livemode, refund.id))
    if row is not None:
        status = refund_rules.merge(row.status, refund.status)
        if status == row.status:
            return None
        new = replace(row, status=status, last_event_id=event.event_id)
    else:
        new = RefundRow(
            refund.id,
            event.livemode,
            charge.id,
            charge.order_id,
            refund.amount,
            charge.currency,
            refund.status,
            refund.created_at,
            event.event_id,
        )
    batch.book_refund(new)
    held = row.moved if row is not None else 0
    booked = Refund(new.id, new.amount, new.created_at, new.status)
    if new.moved > held:
        return [ledger.refund(booked, charge, event.event_id)]
    if new.moved < held:
        return [ledger.refund_reversal(booked, charge, event.event_id, event.created_at)]
    return []


def _check_refunds(batch: _Batch, charge: ledger.Charge) -> None:
    """Refunds of a charge (across events: each names its own refund ids) never add up to more
    than it paid; an event that would make them is not applied (permanent: dead letter)."""
    total = sum(r.moved for r in batch.refunds_of(charge))
    if total > charge.amount:
        raise UnapplicableEvent(
            f"refunds of charge {charge.id} would add up to {total}, more than its {charge.amount}"
        )


def _chargeback_event(
    batch: _Batch, event: OrderEvent, charge: ledger.Charge
) -> tuple[list[ledger.Posting], Outcome]:
    """Conekta's latest state of the chargeback (by the event's created_at, ties by event id)
    decides its status, whatever the order of arrival; then its money follows."""
    chbk = event.chargeback
    assert chbk is not None
    state = batch.chargebacks.get((event.livemode, chbk.id))
    if state is None:
        status = chbk.status or "open"
        # Said by no event yet: any event that says a status is newer.
        said = (event.event_id, event.created_at) if chbk.status else ("", NEVER)
        row = ChargebackRow(
            chbk.id,
            event.livemode,
            charge.id,
            charge.order_id,
            chargeback_rules.rule(status).fulfillment,
            0,
            charge.currency,
            *said,
            status,
            chbk.created_at,
        )
        state, outcome = ChargebackState(row), Outcome.APPLIED
    else:
        state, outcome = _chargeback_moved(state, event, chbk)
    batch.book_chargeback(state)
    return _settle(batch, state, charge, event), outcome


def _chargeback_moved(
    state: ChargebackState, event: OrderEvent, chbk: Chargeback
) -> tuple[ChargebackState, Outcome]:
    row = state.row
    opened_at = min(row.opened_at, chbk.created_at)
    # An event that says no status (updated without one) moves neither the status nor its
    # clock: an older event that does say one may still arrive and must count.
    if chbk.status is None or not is_newer(row.state(), event.created_at, event.event_id):
        outcome = Outcome.DUPLICATE if chbk.status in {None, row.conekta_status} else Outcome.STALE
        return replace(state, row=replace(row, opened_at=opened_at)), outcome
    status = chbk.status
    moved = replace(
        row,
        conekta_status=status,
        status=chargeback_rules.rule(status).fulfillment,
        last_event_id=event.event_id,
        last_event_created_at=event.created_at,
        opened_at=opened_at,
    )
    outcome = Outcome.APPLIED if status != row.conekta_status else Outcome.DUPLICATE
    return replace(state, row=moved), outcome


def _settle(
    batch: _Batch, state: ChargebackState, charge: ledger.Charge, event: OrderEvent
) -> list[ledger.Posting]:
    """Move what the chargeback holds to where its status wants its target, own keys each."""
    row = state.row
    refunds = [(r.moved, r.created_at) for r in batch.refunds_of(charge)]
    amount = chargeback_rules.target(charge.amount, refunds, row.opened_at, row.conekta_amount)
    moves = chargeback_rules.moves(
        state.held, row.conekta_status, amount, posted_before=state.postings > 0
    )
    postings = []
    for move in moves:
        number = state.postings + 1 if move.step in state.steps else None
        key = ledger.chargeback_key(row.id, move.step, number)
        first = move.step == "opened" and state.postings == 0
        at = row.opened_at if first else max(event.created_at, row.opened_at)
        postings.append(ledger.chargeback(key, move, charge, event.event_id, at))
        state = state.after(move)
    if postings or amount != row.amount:
        batch.book_chargeback(replace(state, row=replace(row, amount=amount)))
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
        row = OrderRow.of(event, batch.views.get(key))
        batch.orders[key] = row.state()
        batch.views[key] = fulfillment.OrderView(
            row.id, row.status, row.amount, row.currency, row.customer_key, row.livemode
        )
        known = key in batch.booked.orders
        target = batch.plan.changed_orders if known else batch.plan.new_orders
        target[key] = row
    return outcome


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
        customer_info=_customer_info(event),
    )


def _customer_info(event: OrderEvent) -> Mapping[str, Any] | None:
    """The body's data.object.customer_info when it is an object (order events carry one)."""
    data = event.document.get("data")
    resource = data.get("object") if isinstance(data, Mapping) else None
    info = resource.get("customer_info") if isinstance(resource, Mapping) else None
    return info if isinstance(info, Mapping) else None
