"""Benchmark load built from Conekta's own sample shapes (examples/events/order.paid.json: line
items, shipping, the full charge, webhook logs; about 5.5 KB), half of it for one hot merchant's
customer, half spread out; and a mixed workload of a shop's real life (refunds and chargebacks
among the payments)."""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson

from testkit.events import SAMPLES, chargeback_event, new_event_id

Events = tuple[list[bytes], list[str], list[str]]

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


def paid_events(n: int, prefix: str = "b") -> Events:
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


def refund_document(
    paid: dict[str, Any], event_type: str, refunds: list[tuple[str, int, int]], created_at: int
) -> dict[str, Any]:
    """The paid document as Conekta sends it after refunds (each refund repeated later)."""
    document = copy.deepcopy(paid)
    status = event_type.removeprefix("order.")
    document.update(id=new_event_id(created_at), type=event_type, created_at=created_at)
    order = document["data"]["object"]
    order["payment_status"] = status
    order["amount_refunded"] = sum(cents for _, cents, _ in refunds)
    charge = order["charges"]["data"][0]
    charge["status"] = status
    charge["refunds"] = {
        "object": "list",
        "data": [
            {"object": "refund", "id": rid, "amount": -cents, "created_at": at}
            for rid, cents, at in refunds
        ],
    }
    return document


def mixed_events(n: int, prefix: str = "m") -> Events:
    """(bodies, types, ids) of n events, in the order a shop sees them: every order paid; one
    in five then partially refunded and refunded in full (two refund events, the second
    repeating the first refund); one in ten charged back, the chargeback won or lost."""
    now = int(time.time())
    bodies: list[bytes] = []
    types: list[str] = []
    i = 0
    while len(bodies) < n:
        order = f"ord_{prefix}{i}"
        customer = "cus_hot" if i % 2 else f"cus_{prefix}{i}"
        paid = paid_document(new_event_id(now), order, now, 2000, 80, customer)
        life = [("order.paid", orjson.dumps(paid))]
        refunds = [(f"re_{prefix}{i}a", 500, now + 1), (f"re_{prefix}{i}b", 1500, now + 2)]
        if i % 5 == 0:
            for k, event_type in enumerate(("order.partially_refunded", "order.refunded")):
                document = refund_document(paid, event_type, refunds[: k + 1], now + k + 1)
                life.append((event_type, orjson.dumps(document)))
        elif i % 10 == 3:
            ending = "charge.chargeback.won" if i % 20 == 3 else "charge.chargeback.lost"
            for k, event_type in enumerate(("charge.chargeback.created", ending), 1):
                body = chargeback_event(
                    event_type,
                    f"chbk_{prefix}{i}",
                    charge_id=f"ch_{order}",
                    created_at=now + k,
                    livemode=True,
                )
                life.append((event_type, body))
        for event_type, body in life[: n - len(bodies)]:
            bodies.append(body)
            types.append(event_type)
        i += 1
    return bodies, types, [orjson.loads(b)["id"] for b in bodies]
