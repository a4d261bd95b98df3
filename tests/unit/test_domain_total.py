"""The domain is total on anything the schema admits: a body drawn from schemas/event.json is
either judged `invalid` (the field named), or decided by the domain, which may refuse it only with
the project's own errors (UnapplicableEvent, UnknownCharge…), never TypeError, AttributeError,
KeyError or the like. Both with nothing booked and with the charge it names booked, and through
fulfillment.build for an order the event does not carry."""

from __future__ import annotations

import contextlib
from typing import Any

import jsonschema_rs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

import schemas
from core.errors import ConektaIngestError, InvalidEvent, UnapplicableEvent
from core.event import judge
from domain import fulfillment, ledger
from domain.fulfillment import OrderView
from domain.order_event import OrderEvent, order_event_from, parse_order_event
from domain.plan import Booked, Incoming, plan_batch
from testkit.events import order_event
from testkit.schema_bodies import READ, event_bodies

pytestmark = pytest.mark.unit
validate_fulfillment = jsonschema_rs.validator_for(schemas.load("fulfillment.json")).validate


def _decided(document: dict[str, Any]) -> tuple[OrderEvent, bytes] | None:
    body = orjson.dumps(document)
    try:
        judged = judge(body)
    except InvalidEvent:
        return None
    try:
        return order_event_from(judged), body
    except ConektaIngestError:
        return None


def _booked(event: OrderEvent) -> Booked:
    """The charge the event names (or pays) booked already, with its order."""
    charge_id = event.charge_id or (event.paid_charges[0].id if event.paid_charges else "ch_x")
    order_id = event.order_id or "ord_booked"
    charge = ledger.Charge(
        charge_id, order_id, 10_000, "MXN", event.livemode, "cus_booked", 300, None
    )
    view = OrderView(order_id, "paid", 10_000, "MXN", "cus_booked", event.livemode)
    return Booked(
        charges={(event.livemode, charge_id): charge},
        order_views={(event.livemode, order_id): view},
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_bodies())
def test_any_body_the_schema_admits_is_decided_without_a_crash(document: dict[str, Any]) -> None:
    decided = _decided(document)
    if decided is None:
        return
    event, body = decided
    for booked in (Booked(), _booked(event)):
        with contextlib.suppress(ConektaIngestError):
            plan_batch([Incoming(event, body, None)], booked)
    view = OrderView(event.order_id or "ord_x", "paid", 1, "MXN", None, event.livemode)
    built = fulfillment.build(event, view, "won")
    validate_fulfillment(orjson.loads(built.body))  # what subscribers are promised


def test_the_fields_the_domain_reads_are_drawn_in_every_open_object() -> None:
    for name in ("payment_method", "customer_info", "line_items", "refunds", "status"):
        assert name in READ


def test_a_payment_method_of_any_type_is_read_defensively() -> None:
    for method in (1.5, "oxxo", ["x"], None, {"type": 3}):
        document = {
            "id": "a" * 24,
            "object": "event",
            "type": "order.paid",
            "created_at": 1_700_000_000,
            "livemode": False,
            "data": {
                "object": {
                    "id": "ord_1",
                    "amount": 100,
                    "currency": "MXN",
                    "payment_status": "paid",
                    "customer_info": {"email": "a@b.mx"},
                    "charges": {
                        "data": [
                            {
                                "id": "ch_1",
                                "status": "paid",
                                "amount": 100,
                                "payment_method": method,
                            }
                        ]
                    },
                }
            },
        }
        decided = _decided(document)
        assert decided is not None
        event, _ = decided
        view = OrderView("ord_1", "paid", 100, "MXN", "a@b.mx", False)
        built = orjson.loads(fulfillment.build(event, view).body)
        validate_fulfillment(built)
        assert built["payment"] is None  # no reference, barcode or CLABE of the right type


def test_a_charge_booked_for_one_order_cannot_pay_another() -> None:
    """Conekta gives a charge to one order: an event that names it under another order (a body
    renamed, as the fuzz did) is refused alone, and that order is not marked paid without money."""
    first = order_event("order.paid", "ord_first", charge_id="ch_shared", customer_id="c1")
    other = order_event("order.paid", "ord_other", charge_id="ch_shared", customer_id="c1")
    items = [Incoming(parse_order_event(body), body, None) for body in (first, other)]
    plan = plan_batch(items, Booked(), isolate=True)
    assert set(plan.failed) == {1}
    assert "booked for order ord_first, not ord_other" in str(plan.failed[1])
    assert [key for _, key in plan.new_orders] == ["ord_first"]
    with pytest.raises(UnapplicableEvent):
        plan_batch(items, Booked())
