"""Benchmark load: order.paid events, half for one hot merchant's customer, half spread out."""

from __future__ import annotations

import time

import orjson

from testkit.events import new_event_id, order_event_document


def paid_events(n: int, prefix: str = "b") -> tuple[list[bytes], list[str], list[str]]:
    """(bodies, types, ids) of n order.paid events; odd ones share one hot customer."""
    now = int(time.time())
    bodies, types, ids = [], [], []
    for i in range(n):
        document = order_event_document(
            "order.paid",
            f"ord_{prefix}{i}",
            event_id=new_event_id(now),
            created_at=now,
            amount=1000 + i % 97,
            fee=40,
            customer_id="cus_hot" if i % 2 else f"cus_{prefix}{i}",
        )
        bodies.append(orjson.dumps(document))
        types.append("order.paid")
        ids.append(document["id"])
    return bodies, types, ids
