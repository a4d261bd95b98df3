from __future__ import annotations

from typing import Any

import orjson
import pytest

from core.errors import CurrencyMismatch, UnapplicableEvent
from domain.order_event import customer_key, parse_order_event
from testkit.events import SAMPLES, changed_paid_event, chargeback_event, order_event, order_of


def test_sample_paidorder_of() -> None:
    event = parse_order_event((SAMPLES / "order.paid.json").read_bytes())
    assert (event.order_id, event.status, event.amount, event.currency) == (
        "ord_2su3ENUyByXnjb15N",
        "paid",
        20000,
        "MXN",
    )
    assert event.customer_key == "cus_2ss5YAeTKuEr5M4fD"
    assert [(c.id, c.amount, c.fee) for c in event.paid_charges] == [
        ("637e79c970d06300013ea159", 20000, 796)
    ]


@pytest.mark.parametrize("name", ["order.pending_payment.json", "order.declined.json"])
def test_fees_of_unpaid_charges_are_not_money(name: str) -> None:
    assert parse_order_event((SAMPLES / name).read_bytes()).paid_charges == ()


def test_customer_key_prefers_id_then_lowercase_email() -> None:
    assert customer_key({"customer_id": "cus_1", "email": "A@B.mx"}) == "cus_1"
    assert customer_key({"customer_id": None, "email": " A@B.mx "}) == "a@b.mx"
    assert customer_key({}) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (order_event("order.paid", "ord_x", currency="EUR"), "unknown currency"),
        (order_event("order.paid", "ord_x", amount=100, fee=200), "exceeds"),
        (
            changed_paid_event(
                lambda d: order_of(d)["charges"]["data"][0].update(status="declined")
            ),
            "without a paid charge",
        ),
        (order_event("order.paid", "ord_x", customer_id=None, email=None), "customer"),
        (order_event("order.updated", "ord_x"), "no handler"),
        (
            order_event("order.refunded", "ord_x", amount=100, fee=0, refunds=(("r", 101, 1),)),
            "refunds add up",
        ),
        (
            changed_paid_event(lambda d: d.update(type="order.partially_refunded")).replace(
                b'"status":"paid"', b'"status":"pending_payment"'
            ),
            "without a paid charge",
        ),
        (changed_paid_event(lambda d: order_of(d).update(amount=1.5)), "whole cents"),
        (b"{}", "malformed"),
    ],
)
def test_unapplicable_events_are_permanent(body: bytes, reason: str) -> None:
    with pytest.raises(UnapplicableEvent, match=reason):
        parse_order_event(body)


def test_whole_float_amounts_become_integers() -> None:
    event = parse_order_event(changed_paid_event(lambda d: order_of(d).update(amount=10000.0)))
    assert event.amount == 10000
    assert isinstance(event.amount, int)


def test_refunds_are_positive_cents_with_their_dates() -> None:
    body = order_event(
        "order.refunded", "ord_x", amount=400, fee=10, refunds=(("r1", 150, 7), ("r2", 250, 8))
    )
    event = parse_order_event(body)
    (charge,) = event.paid_charges
    assert [(r.id, r.amount, int(r.created_at.timestamp())) for r in charge.refunds] == [
        ("r1", 150, 7),
        ("r2", 250, 8),
    ]
    assert event.status == "refunded"


def test_sample_chargeback_names_its_charge_and_no_order() -> None:
    from testkit.events import SAMPLES

    event = parse_order_event((SAMPLES / "charge.chargeback.created.json").read_bytes())
    assert event.order_id is None
    assert event.chargeback is not None
    assert (event.charge_id, event.chargeback.status) == (
        "637e79c970d06300013ea159",
        "action_required",  # Conekta's own status, one of its spec's
    )


def test_handled_types_are_routed_to_the_order_queue() -> None:
    from core import topology
    from domain.order_event import HANDLED_TYPES

    assert sorted(HANDLED_TYPES) == sorted(topology.ORDER_EVENT_TYPES)


def test_paid_above_the_order_amount_is_applied_and_flagged() -> None:
    """Several cash references all paid (Conekta's order_cash_multiple): the money moved."""
    event = parse_order_event(changed_paid_event(lambda d: order_of(d).update(amount=5000)))
    assert event.overpaid
    assert (event.paid_total, event.amount) == (10_000, 5000)


def test_a_missing_fee_is_unknown_not_zero() -> None:
    (charge,) = parse_order_event(order_event("order.paid", "ord_x", fee=None)).paid_charges
    assert charge.fee is None
    (charge,) = parse_order_event(order_event("order.paid", "ord_x", fee=0)).paid_charges
    assert charge.fee == 0


def test_refund_status_and_lists_that_go_on() -> None:
    def more(document: dict[str, Any]) -> None:
        order = order_of(document)
        order["charges"]["has_more"] = True
        order["charges"]["data"][0]["refunds"]["has_more"] = True

    body = order_event(
        "order.refunded", "ord_x", amount=4000, refunds=(("r1", 150, 7, "pending"), ("r2", 50, 8))
    )
    document = orjson.loads(body)
    more(document)
    event = parse_order_event(orjson.dumps(document))
    assert [r.status for r in event.paid_charges[0].refunds] == ["pending", None]
    assert event.incomplete == ("charges has_more", "refunds of ch_ord_x has_more")


def test_failed_refunds_do_not_count_against_the_charge() -> None:
    body = order_event(
        "order.refunded", "ord_x", amount=1000, refunds=(("r1", 1000, 7, "failed"), ("r2", 1000, 8))
    )
    assert len(parse_order_event(body).paid_charges[0].refunds) == 2


def test_a_refund_in_another_currency_than_its_charge_is_permanent() -> None:
    document = orjson.loads(
        order_event("order.refunded", "ord_x", amount=400, refunds=(("r1", 150, 7),))
    )
    order_of(document)["charges"]["data"][0]["refunds"]["data"][0]["currency"] = "USD"
    with pytest.raises(CurrencyMismatch, match="refund r1 is in USD, its charge in MXN"):
        parse_order_event(orjson.dumps(document))


@pytest.mark.parametrize(
    ("event_type", "status", "expected"),
    [
        ("charge.chargeback.updated", "lost", "lost"),  # updated carries the status
        ("charge.chargeback.updated", "represented", "represented"),
        ("charge.chargeback.updated", "updated", None),  # not one of Conekta's: no change
        ("charge.chargeback.created", "created", "open"),
        ("charge.chargeback.won", "won", "won"),
        ("charge.chargeback.created", "rt", "rt"),
    ],
)
def test_chargeback_events_carry_conekta_status(
    event_type: str, status: str, expected: str | None
) -> None:
    body = chargeback_event(event_type, "chbk_1", charge_id="ch_1", status=status)
    chargeback = parse_order_event(body).chargeback
    assert chargeback is not None
    assert chargeback.status == expected
