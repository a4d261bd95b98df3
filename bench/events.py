"""Benchmark load built from Conekta's own sample shapes (examples/events/order.paid.json: line
items, shipping, the full charge, webhook logs; about 5.5 KB), half of it for one hot merchant's
customer, half spread out."""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson

from testkit.events import SAMPLES, new_event_id

PAID_SAMPLE: dict[str, Any] = orjson.loads((SAMPLES / "order.paid.json").read_bytes())


def paid_document(
    event_id: str, order_id: str, created_at: int, amount: int, fee: int, customer_id: str
) -> dict[str, Any]:
    """The sample order.paid with its ids, amounts and customer replaced."""
    document = copy.deepcopy(PAID_SAMPLE)
    document["id"], document["created_at"] = event_id, created_at
    order = document["data"]["object"]
    order["id"], order["amount"] = order_id, amount
    order["customer_info"]["customer_id"] = customer_id
    for item in order["line_items"]["data"]:
        item["parent_id"] = order_id
    charge = order["charges"]["data"][0]
    charge.update(
        id=f"ch_{order_id}", amount=amount, fee=fee, order_id=order_id, customer_id=customer_id
    )
    charge["paid_at"] = created_at
    return document


def paid_events(n: int, prefix: str = "b") -> tuple[list[bytes], list[str], list[str]]:
    """(bodies, types, ids) of n order.paid events; odd ones share one hot customer."""
    now = int(time.time())
    bodies, types, ids = [], [], []
    for i in range(n):
        document = paid_document(
            new_event_id(now),
            f"ord_{prefix}{i}",
            now,
            amount=1000 + i % 97,
            fee=40,
            customer_id="cus_hot" if i % 2 else f"cus_{prefix}{i}",
        )
        bodies.append(orjson.dumps(document))
        types.append("order.paid")
        ids.append(document["id"])
    return bodies, types, ids


def mean_size(bodies: list[bytes]) -> int:
    return sum(map(len, bodies)) // max(len(bodies), 1)
