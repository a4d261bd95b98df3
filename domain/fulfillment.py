"""The message downstream services get for each applied change (schemas/fulfillment.json)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from domain import chargeback as chargeback_rules
from domain import refund as refund_rules
from domain.order_event import OrderEvent

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FulfillmentMessage:
    message_id: str
    routing_key: str
    body: bytes


@dataclass(frozen=True)
class OrderView:
    """The order as it stands after the change (a chargeback event does not carry it)."""

    id: str
    status: str
    amount: int
    currency: str
    customer_key: str | None
    livemode: bool

    @classmethod
    def of(cls, event: OrderEvent) -> OrderView | None:
        """The order as the event says it is (None for a chargeback: it names no order)."""
        if event.order_id is None or event.status is None:
            return None
        return cls(
            event.order_id,
            event.status,
            event.amount,
            event.currency,
            event.customer_key,
            event.livemode,
        )


def message_id(order_id: str, event_id: str) -> str:
    """Stable per applied change: an event applies at most one change to one order."""
    return f"ful_{order_id}_{event_id}"


def build(
    event: OrderEvent, order: OrderView, chargeback_status: str | None = None
) -> FulfillmentMessage:
    """`chargeback_status`: Conekta's status of the event's chargeback after the change."""
    resource = _mapping(event.document["data"]["object"])
    is_order = resource.get("object", "order") == "order" and event.chargeback is None
    customer_info = _mapping(resource.get("customer_info")) if is_order else {}
    line_items = _list(_mapping(resource.get("line_items")).get("data")) if is_order else []
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "message_id": message_id(order.id, event.event_id),
        "event_id": event.event_id,
        "event_type": event.type,
        "occurred_at": int(event.created_at.timestamp()),
        "livemode": event.livemode,
        "order_id": order.id,
        "status": order.status,
        "amount": order.amount,
        "currency": order.currency,
        "customer": {
            "key": order.customer_key,
            "customer_id": _text(customer_info.get("customer_id")),
            "email": _text(customer_info.get("email")),
            "name": _text(customer_info.get("name")),
        },
        "line_items": [_line_item(_mapping(item)) for item in line_items],
        "metadata": _mapping(resource.get("metadata")) if is_order else {},
        "refunded_amount": sum(
            refund_rules.moved_amount(r.status, r.amount)
            for c in event.paid_charges
            for r in c.refunds
        ),
        "chargeback": _chargeback(event, chargeback_status),
        "payment": _payment(resource) if is_order else None,
    }
    return FulfillmentMessage(body["message_id"], event.type, orjson.dumps(body))


def _chargeback(event: OrderEvent, status: str | None) -> dict[str, Any] | None:
    """The four statuses downstream knows, and Conekta's own beside them."""
    if event.chargeback is None:
        return None
    conekta_status = status or event.chargeback.status or "open"
    return {
        "id": event.chargeback.id,
        "status": chargeback_rules.rule(conekta_status).fulfillment,
        "conekta_status": conekta_status,
    }


def _line_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": _text(item.get("name")),
        "sku": _text(item.get("sku")),
        "unit_price": _whole(item.get("unit_price")),
        "quantity": _whole(item.get("quantity")),
    }


def _payment(order: dict[str, Any]) -> dict[str, Any] | None:
    """Cash (OXXO) and SPEI instructions of the order's first charge that has them."""
    for charge in _list(_mapping(order.get("charges")).get("data")):
        method = _mapping(_mapping(charge).get("payment_method"))
        found = {
            "type": _text(method.get("type")),
            "reference": _text(method.get("reference")),
            "barcode_url": _text(method.get("barcode_url")),
            "clabe": _text(method.get("clabe")) or _text(method.get("receiving_account_number")),
            "expires_at": _whole(method.get("expires_at")),
        }
        if any(found[k] for k in ("reference", "barcode_url", "clabe")):
            return found
    return None


# Fields the event schema leaves open are read defensively: a value of another type than the
# message promises (schemas/fulfillment.json) is left out (None, {}, []), never a crash.


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _whole(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None
