from __future__ import annotations

from typing import Any

import orjson
import pytest

from core.errors import InvalidEvent
from core.event import parse_event
from testkit.events import (
    SAMPLES,
    changed_paid_event,
    charge_refunded_event,
    chargeback_event,
    order_of,
)


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_sample_is_accepted(path: Any) -> None:
    body = path.read_bytes()
    event = parse_event(body)
    assert event.id == orjson.loads(body)["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: order_of(d).pop("id"), "data.object.id: required"),
        (lambda d: d["data"].pop("object"), "data.object: required"),
        (lambda d: order_of(d).update(amount=10.5), "data.object.amount: "),
        (lambda d: order_of(d).update(amount="100"), "data.object.amount: "),
        (lambda d: order_of(d).update(amount=-1), "data.object.amount: "),
        (lambda d: order_of(d).update(amount=10**15), "data.object.amount: "),
        (lambda d: order_of(d).update(amount=True), "data.object.amount: "),
        (lambda d: order_of(d).update(currency="pesos"), "data.object.currency: "),
        (lambda d: order_of(d)["charges"]["data"][0].update(fee=1.5), "fee"),
        (lambda d: d.update(id="not-hex"), "id: "),
        (lambda d: d.update(type=7), "type: "),
        (lambda d: d.pop("created_at"), "created_at: required"),
    ],
)
def test_schema_errors_name_the_field(change: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_event(changed_paid_event(change))
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("body", "drop", "field"),
    [
        (
            chargeback_event("charge.chargeback.created", "chbk_1", charge_id="ch_1"),
            "charge_id",
            "data.object.charge_id: required",
        ),
        (
            charge_refunded_event("ord_a", charge_id="ch_1", amount=100, refunds=(("r1", 100, 1),)),
            "order_id",
            "data.object.order_id: required",
        ),
    ],
)
def test_refund_and_chargeback_fields_are_judged_too(body: bytes, drop: str, field: str) -> None:
    document = orjson.loads(body)
    del document["data"]["object"][drop]
    with pytest.raises(InvalidEvent, match=field):
        parse_event(orjson.dumps(document))


def test_unknown_fields_are_accepted() -> None:
    def add(document: dict[str, Any]) -> None:
        document["brand_new"] = {"x": 1}
        order_of(document)["another"] = [1, 2]

    assert parse_event(changed_paid_event(add)).type == "order.paid"


def test_nul_is_rejected_anywhere() -> None:
    body = changed_paid_event(lambda d: order_of(d)["metadata"].update(note="a\x00b"))
    with pytest.raises(InvalidEvent, match="u0000"):
        parse_event(body)


def test_escaped_backslash_u0000_is_not_nul() -> None:
    body = changed_paid_event(lambda d: order_of(d)["metadata"].update(note="\\u0000"))
    assert parse_event(body).type == "order.paid"


@pytest.mark.parametrize("body", [b"", b"nope", b"[1]", b'{"a": "\\ud800"}', b"\xff\xfe"])
def test_garbage_is_rejected(body: bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(body)
