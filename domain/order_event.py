"""An order event as the worker needs it, decoded from the raw body; pure, no I/O.

Anything that passed the receiver's schema but cannot be applied raises `UnapplicableEvent`:
a permanent failure, dead-lettered at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from core.errors import UnapplicableEvent

# Event type -> the order status it announces.
STATUS_BY_TYPE = {
    "order.paid": "paid",
    "order.pending_payment": "pending_payment",
    "order.declined": "declined",
}
KNOWN_CURRENCIES = frozenset({"MXN", "USD"})


@dataclass(frozen=True)
class PaidCharge:
    id: str
    amount: int
    fee: int


@dataclass(frozen=True)
class OrderEvent:
    event_id: str
    type: str
    status: str
    created_at: datetime
    livemode: bool
    order_id: str
    amount: int
    currency: str
    customer_key: str | None
    paid_charges: tuple[PaidCharge, ...]
    document: dict[str, Any]  # the whole parsed event, for the fulfillment message


def parse_order_event(body: bytes) -> OrderEvent:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnapplicableEvent(f"malformed order event: {exc}") from exc
    return order_event_from(document)


def order_event_from(document: Any) -> OrderEvent:
    """The order event in a parsed event document (checked against the schema first)."""
    try:
        order = document["data"]["object"]
        event = OrderEvent(
            event_id=document["id"],
            type=document["type"],
            status=_status(document["type"]),
            created_at=datetime.fromtimestamp(document["created_at"], UTC),
            livemode=bool(document["livemode"]),
            order_id=order["id"],
            amount=_cents(order["amount"]),
            currency=order["currency"],
            customer_key=customer_key(order.get("customer_info") or {}),
            paid_charges=_paid_charges(order),
            document=document,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, UnapplicableEvent):
            raise
        raise UnapplicableEvent(f"malformed order event: {type(exc).__name__}: {exc}") from exc
    _check(event)
    return event


def _status(event_type: str) -> str:
    try:
        return STATUS_BY_TYPE[event_type]
    except KeyError:
        raise UnapplicableEvent(f"no handler for event type {event_type}") from None


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


def _paid_charges(order: dict[str, Any]) -> tuple[PaidCharge, ...]:
    charges = (order.get("charges") or {}).get("data") or []
    paid = []
    for charge in charges:
        if charge.get("status") != "paid" or charge.get("amount") == 0:
            continue  # a pending, declined or zero charge moves no money: nothing to post
        currency = charge.get("currency", order["currency"])
        if currency != order["currency"]:
            raise UnapplicableEvent(
                f"charge {charge['id']} is in {currency}, order in {order['currency']}"
            )
        paid.append(
            PaidCharge(charge["id"], _cents(charge["amount"]), _cents(charge.get("fee") or 0))
        )
    return tuple(paid)


def _check(event: OrderEvent) -> None:
    if event.currency not in KNOWN_CURRENCIES:
        raise UnapplicableEvent(f"unknown currency {event.currency}")
    paid_total = sum(c.amount for c in event.paid_charges)
    if paid_total > event.amount:
        raise UnapplicableEvent(
            f"paid charges add up to {paid_total}, more than the order amount {event.amount}"
        )
    for charge in event.paid_charges:
        if charge.fee > charge.amount:
            raise UnapplicableEvent(f"charge {charge.id} fee {charge.fee} exceeds its amount")
    if event.status == "paid" and not event.paid_charges and event.amount > 0:
        raise UnapplicableEvent("order.paid without a paid charge: no money to post")
    if event.paid_charges and event.customer_key is None:
        raise UnapplicableEvent("paid order without customer_id or e-mail: no customer account")
