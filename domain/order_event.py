"""An event as the worker needs it, decoded from the raw body; pure, no I/O.

Two shapes: order events (`data.object` is the order, with its charges and their refunds) and
charge events (`charge.refunded`, `charge.chargeback.*`: a charge or a chargeback, no order
id for chargebacks; the worker finds the order from the charge already booked).

Anything that passed the schema (core.event.judge) but cannot be applied raises `UnapplicableEvent`:
a permanent failure, dead-lettered at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from core.errors import CurrencyMismatch, UnapplicableEvent
from domain import chargeback as chargeback_rules
from domain import refund as refund_rules

# Order event type -> the order status it announces.
STATUS_BY_TYPE = {
    "order.pending_payment": "pending_payment",
    "order.declined": "declined",
    "order.expired": "expired",
    "order.canceled": "canceled",
    "order.voided": "voided",
    "order.paid": "paid",
    "order.partially_refunded": "partially_refunded",
    "order.refunded": "refunded",
}
# Chargeback event type -> the chargeback status it announces when its object carries none of
# Conekta's (domain/chargeback.py); `updated` without a status changes no status.
CHARGEBACK_STATUS_BY_TYPE: dict[str, str | None] = {
    "charge.chargeback.created": "open",
    "charge.chargeback.updated": None,
    "charge.chargeback.under_review": "under_review",
    "charge.chargeback.won": "won",
    "charge.chargeback.lost": "lost",
}
CHARGE_REFUNDED = "charge.refunded"
HANDLED_TYPES = (*STATUS_BY_TYPE, CHARGE_REFUNDED, *CHARGEBACK_STATUS_BY_TYPE)
PAID_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})
# A charge in these statuses has been paid (its money moved), whatever happened after.
PAID_CHARGE_STATUSES = frozenset({"paid", "partially_refunded", "refunded", "charged_back"})
KNOWN_CURRENCIES = frozenset({"MXN", "USD"})


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int  # cents, positive (Conekta writes it negative)
    created_at: datetime
    status: str | None = None  # Conekta's (domain/refund.py); None: the money moved


@dataclass(frozen=True)
class PaidCharge:
    id: str
    amount: int
    fee: int | None  # None: the event does not say (optional in Conekta's spec)
    paid_at: datetime | None = None
    refunds: tuple[Refund, ...] = ()
    refunds_incomplete: bool = False  # its refunds list said has_more


@dataclass(frozen=True)
class Chargeback:
    id: str
    charge_id: str
    status: str | None  # Conekta's status (domain/chargeback.py); None: not said (updated)
    created_at: datetime


@dataclass(frozen=True)
class OrderEvent:
    event_id: str
    type: str
    status: str | None  # the order status announced; None for charge events
    created_at: datetime
    livemode: bool
    order_id: str | None  # None for chargebacks until the charge is resolved
    amount: int
    currency: str
    customer_key: str | None
    paid_charges: tuple[PaidCharge, ...]
    document: dict[str, Any]  # the whole parsed event, for the fulfillment message
    charge_id: str | None = None  # charge events: the charge they are about
    chargeback: Chargeback | None = None
    charges_incomplete: bool = False  # its charges list said has_more

    @property
    def is_charge_event(self) -> bool:
        return self.charge_id is not None

    @property
    def incomplete(self) -> tuple[str, ...]:
        """Why the lists this event carries may miss items (Conekta's `has_more`): what is there
        is applied, and the order is flagged for `reconcile` to fetch the rest."""
        reasons = ["charges has_more"] if self.charges_incomplete else []
        reasons += [
            f"refunds of {c.id} has_more" for c in self.paid_charges if c.refunds_incomplete
        ]
        return tuple(reasons)

    @property
    def paid_total(self) -> int:
        return sum(c.amount for c in self.paid_charges)

    @property
    def overpaid(self) -> bool:
        """Paid charges above the order amount (several cash references all paid): the money
        moved, so it is applied, and flagged (ledger verify, a metric)."""
        return not self.is_charge_event and self.paid_total > self.amount


def parse_order_event(body: bytes) -> OrderEvent:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnapplicableEvent(f"malformed event: {exc}") from exc
    return order_event_from(document)


def order_event_from(document: Any) -> OrderEvent:
    """The event in a parsed event document (checked against the schema first)."""
    try:
        event_type = document["type"]
        if event_type in STATUS_BY_TYPE:
            event = _order_event(document)
        elif event_type == CHARGE_REFUNDED:
            event = _charge_refunded(document)
        elif event_type in CHARGEBACK_STATUS_BY_TYPE:
            event = _chargeback_event(document)
        else:
            raise UnapplicableEvent(f"no handler for event type {event_type}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, UnapplicableEvent):
            raise
        raise UnapplicableEvent(f"malformed event: {type(exc).__name__}: {exc}") from exc
    _check(event)
    return event


def _envelope(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": document["id"],
        "type": document["type"],
        "created_at": _time(document["created_at"]),
        "livemode": bool(document["livemode"]),
        "document": document,
    }


def _order_event(document: dict[str, Any]) -> OrderEvent:
    order = document["data"]["object"]
    charges = order.get("charges") or {}
    return OrderEvent(
        **_envelope(document),
        status=STATUS_BY_TYPE[document["type"]],
        order_id=_id(order["id"]),
        amount=_cents(order["amount"]),
        currency=_id(order["currency"]),
        customer_key=customer_key(order.get("customer_info") or {}),
        paid_charges=_paid_charges(charges.get("data") or [], order),
        charges_incomplete=charges.get("has_more") is True,
    )


def _charge_refunded(document: dict[str, Any]) -> OrderEvent:
    """A charge object; its order and customer are the ones already booked for the charge."""
    charge = document["data"]["object"]
    return OrderEvent(
        **_envelope(document),
        status=None,
        order_id=_id(charge["order_id"]),
        amount=_cents(charge["amount"]),
        currency=_id(charge["currency"]),
        customer_key=None,
        paid_charges=_paid_charges([charge], charge),
        charge_id=_id(charge["id"]),
    )


def _chargeback_event(document: dict[str, Any]) -> OrderEvent:
    chbk = document["data"]["object"]
    chargeback = Chargeback(
        id=_id(chbk["id"]),
        charge_id=_id(chbk["charge_id"]),
        status=_chargeback_status(document["type"], chbk),
        created_at=_time(chbk.get("created_at") or document["created_at"]),
    )
    return OrderEvent(
        **_envelope(document),
        status=None,
        order_id=None,
        amount=0,
        currency="",
        customer_key=None,
        paid_charges=(),
        charge_id=chargeback.charge_id,
        chargeback=chargeback,
    )


def _chargeback_status(event_type: str, chbk: dict[str, Any]) -> str | None:
    """Conekta's own status of the chargeback when it is one of the spec's; else the one the
    event type names (`updated` names none)."""
    status = chbk.get("status")
    if isinstance(status, str) and status in chargeback_rules.RULES:
        return status
    return CHARGEBACK_STATUS_BY_TYPE[event_type]


def _id(value: object) -> str:
    """An id (or currency code) the plan can key on: text, not a number or a container."""
    if not isinstance(value, str) or not value:
        raise UnapplicableEvent(f"not an id: {str(value)[:80]!r}")
    return value


def _time(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnapplicableEvent(f"not a unix time: {str(value)[:80]!r}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:  # beyond the years datetime can hold
        raise UnapplicableEvent(f"not a unix time: {value}") from exc


def _cents(value: object) -> int:
    """JSON Schema counts 1.0 as an integer; money must be a whole number of cents."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnapplicableEvent(f"amount is not a number: {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise UnapplicableEvent(f"amount is not whole cents: {value!r}")
    return int(value)


def customer_key(customer_info: dict[str, Any]) -> str | None:
    """Conekta's customer id, else the lower-cased e-mail."""
    if customer_info.get("customer_id"):
        return str(customer_info["customer_id"])
    if customer_info.get("email"):
        return str(customer_info["email"]).strip().lower()
    return None


def _paid_charges(charges: list[dict[str, Any]], owner: dict[str, Any]) -> tuple[PaidCharge, ...]:
    paid = []
    for charge in charges:
        if charge.get("status") not in PAID_CHARGE_STATUSES or charge.get("amount") == 0:
            continue  # a pending, declined or zero charge moves no money: nothing to post
        currency = charge.get("currency", owner["currency"])
        if currency != owner["currency"]:
            raise UnapplicableEvent(
                f"charge {charge['id']} is in {currency}, order in {owner['currency']}"
            )
        paid_at = charge.get("paid_at")
        fee = charge.get("fee")
        refunds = charge.get("refunds") or {}
        paid.append(
            PaidCharge(
                _id(charge["id"]),
                _cents(charge["amount"]),
                None if fee is None else _cents(fee),
                _time(paid_at) if paid_at else None,
                _refunds(refunds.get("data") or [], currency),
                refunds.get("has_more") is True,
            )
        )
    return tuple(paid)


def _refunds(refunds: list[dict[str, Any]], charge_currency: str) -> tuple[Refund, ...]:
    return tuple(_refund(r, charge_currency) for r in refunds)


def _refund(refund: dict[str, Any], charge_currency: str) -> Refund:
    currency = refund.get("currency") or charge_currency
    if currency != charge_currency:
        raise CurrencyMismatch(
            f"refund {refund['id']} is in {currency}, its charge in {charge_currency}"
        )
    status = refund.get("status")
    return Refund(
        _id(refund["id"]),
        abs(_cents(refund["amount"])),
        _time(refund["created_at"]),
        status if isinstance(status, str) and status else None,
    )


def _check(event: OrderEvent) -> None:
    if event.chargeback is not None:
        return  # no money of its own: the booked charge says how much
    if event.currency not in KNOWN_CURRENCIES:
        raise UnapplicableEvent(f"unknown currency {event.currency}")
    for charge in event.paid_charges:
        if charge.fee is not None and charge.fee > charge.amount:
            raise UnapplicableEvent(f"charge {charge.id} fee {charge.fee} exceeds its amount")
        refunded = sum(r.amount for r in charge.refunds if refund_rules.can_move(r.status))
        if refunded > charge.amount:
            raise UnapplicableEvent(
                f"charge {charge.id} refunds add up to {refunded}, more than its {charge.amount}"
            )
    if event.status in PAID_STATUSES and not event.paid_charges and event.amount > 0:
        raise UnapplicableEvent(f"{event.type} without a paid charge: no money to post")
    if event.type == CHARGE_REFUNDED and not event.paid_charges:
        raise UnapplicableEvent("charge.refunded for a charge that was never paid")
    if event.paid_charges and event.customer_key is None and not event.is_charge_event:
        raise UnapplicableEvent("paid order without customer_id or e-mail: no customer account")
