from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingest.event import InvalidEvent, parse_event
from tests.support import SAMPLES, order_event_document


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_sample_is_accepted(path: Any) -> None:
    body = path.read_bytes()
    event = parse_event(body)
    assert event.id == orjson.loads(body)["id"]


def _mutated(change: Any) -> bytes:
    document = order_event_document("order.paid", "ord_abc")
    change(document)
    return orjson.dumps(document)


def _order(document: dict[str, Any]) -> dict[str, Any]:
    order: dict[str, Any] = document["data"]["object"]
    return order


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: _order(d).pop("id"), "event.data.object"),
        (lambda d: d["data"].pop("object"), "event.data"),
        (lambda d: _order(d).update(amount=10.5), "event.data.object.amount"),
        (lambda d: _order(d).update(amount="100"), "event.data.object.amount"),
        (lambda d: _order(d).update(amount=-1), "event.data.object.amount"),
        (lambda d: _order(d).update(amount=10**15), "event.data.object.amount"),
        (lambda d: _order(d).update(amount=True), "event.data.object.amount"),
        (lambda d: _order(d).update(currency="pesos"), "event.data.object.currency"),
        (lambda d: _order(d)["charges"]["data"][0].update(fee=1.5), "fee"),
        (lambda d: d.update(id="not-hex"), "event.id"),
        (lambda d: d.update(type=7), "event.type"),
        (lambda d: d.pop("created_at"), "event"),
    ],
)
def test_schema_errors_name_the_field(change: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as raised:
        parse_event(_mutated(change))
    assert field in str(raised.value)


def test_unknown_fields_are_accepted() -> None:
    def add(document: dict[str, Any]) -> None:
        document["brand_new"] = {"x": 1}
        _order(document)["another"] = [1, 2]

    assert parse_event(_mutated(add)).type == "order.paid"


def test_nul_is_rejected_anywhere() -> None:
    body = _mutated(lambda d: _order(d)["metadata"].update(note="a\x00b"))
    with pytest.raises(InvalidEvent, match="u0000"):
        parse_event(body)


def test_escaped_backslash_u0000_is_not_nul() -> None:
    body = _mutated(lambda d: _order(d)["metadata"].update(note="\\u0000"))
    assert parse_event(body).type == "order.paid"


@pytest.mark.parametrize("body", [b"", b"nope", b"[1]", b'{"a": "\\ud800"}', b"\xff\xfe"])
def test_garbage_is_rejected(body: bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(body)
