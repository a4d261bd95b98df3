"""The message downstream services get for each applied order change (schemas/fulfillment.json)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from domain.order_event import OrderEvent

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FulfillmentMessage:
    message_id: str
    routing_key: str
    body: bytes


def message_id(event: OrderEvent) -> str:
    """Stable per applied change: an event applies at most one change to one order."""
    return message_id_for(event.order_id, event.event_id)


def message_id_for(order_id: str, event_id: str) -> str:
    return f"ful_{order_id}_{event_id}"


def build(event: OrderEvent) -> FulfillmentMessage:
    order = event.document["data"]["object"]
    customer_info = order.get("customer_info") or {}
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "message_id": message_id(event),
        "event_id": event.event_id,
        "event_type": event.type,
        "occurred_at": int(event.created_at.timestamp()),
        "livemode": event.livemode,
        "order_id": event.order_id,
        "status": event.status,
        "amount": event.amount,
        "currency": event.currency,
        "customer": {
            "key": event.customer_key,
            "customer_id": customer_info.get("customer_id"),
            "email": customer_info.get("email"),
            "name": customer_info.get("name"),
        },
        "line_items": [
            _line_item(item) for item in (order.get("line_items") or {}).get("data", [])
        ],
        "metadata": order.get("metadata") or {},
    }
    return FulfillmentMessage(body["message_id"], event.type, orjson.dumps(body))


def _line_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": item.get("name"),
        "sku": item.get("sku"),
        "unit_price": item.get("unit_price"),
        "quantity": item.get("quantity"),
    }
