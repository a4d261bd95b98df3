"""The synchronous answer of `POST /orders`, as the merchant's checkout received it, turned into
the order event it amounts to; pure.

Conekta's guide has merchants reconcile from that answer: a card order comes back `paid` at
once. Booking it as an event (through the same apply path as webhooks) makes the later
`order.paid` webhook a duplicate by business key (the same charge), not a second payment.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import UnapplicableEvent
from domain.order_event import STATUS_BY_TYPE

TYPE_BY_STATUS = {status: event_type for event_type, status in STATUS_BY_TYPE.items()}
ID_PREFIX = "checkout_"  # never a Conekta event id (24 hex digits)


def event_from_order(order: Any) -> bytes:
    """The event body for an order object; UnapplicableEvent when there is nothing to book."""
    if not isinstance(order, dict) or order.get("object", "order") != "order":
        raise UnapplicableEvent("not an order: expected the JSON answer of POST /orders")
    for key in ("id", "amount", "currency"):
        if key not in order:
            raise UnapplicableEvent(f"order.{key} is missing")
    status = order.get("payment_status")
    event_type = TYPE_BY_STATUS.get(str(status))
    if event_type is None:
        raise UnapplicableEvent(
            f"payment_status {status!r}: only {', '.join(sorted(TYPE_BY_STATUS))} can be booked"
        )
    created_at = order.get("updated_at") or order.get("created_at")
    if not isinstance(created_at, int):
        raise UnapplicableEvent("order.created_at is missing or not unix seconds")
    return orjson.dumps(
        {
            "id": f"{ID_PREFIX}{order['id']}_{status}",
            "object": "event",
            "type": event_type,
            "livemode": bool(order.get("livemode")),
            "created_at": created_at,
            "data": {"object": order, "previous_attributes": {}},
        }
    )
