from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from core.errors import UnapplicableEvent, UnknownCharge
from domain import ledger
from domain.chargeback import Move
from domain.money_rows import RefundRow
from domain.order_event import PaidCharge, Refund, parse_order_event
from domain.order_state import OrderState
from domain.outcome import Outcome
from domain.plan import Booked, Incoming, Plan, plan_batch
from testkit.events import charge_refunded_event, chargeback_event, order_event

AT = datetime(2026, 1, 1, tzinfo=UTC)
CHARGE = ledger.Charge("ch", "ord_a", 20000, "MXN", True, "cus_1")


def incoming(event_type: str, order_id: str, **kwargs: Any) -> Incoming:
    return wrap(order_event(event_type, order_id, **kwargs))


def wrap(body: bytes) -> Incoming:
    return Incoming(parse_order_event(body), body, None)


def money(plan: Plan) -> dict[str, int]:
    """Net effect of a plan's postings per account."""
    totals: dict[str, int] = {}
    for posting in plan.postings.values():
        for entry in posting.entries:
            totals[entry.account] = totals.get(entry.account, 0) + entry.amount
    return {k: v for k, v in totals.items() if v}


def test_payment_books_the_gross_and_the_fee_is_its_own_movement() -> None:
    posting = ledger.payment(PaidCharge("ch", 20000, 796), CHARGE, "e", AT)
    assert {e.account: e.amount for e in posting.entries} == {
        "conekta:receivable": 20000,
        "customer:cus_1": -20000,
    }
    assert posting.business_key == "payment:ord_a:ch"
    assert posting.effective_at == AT  # no paid_at: the event's time
    fee = ledger.fee_posting(CHARGE, 796, Decimal("0.16"), "e", AT)
    assert fee.business_key == "fee:ord_a:ch"
    assert {e.account: e.amount for e in fee.entries} == {
        "conekta:receivable": -796,
        "conekta:fees": 686,  # round-half-up(796 / 1.16) = 686.2 -> 686
        "tax:vat_on_fees": 110,
    }
    untaxed = ledger.fee_posting(CHARGE, 796, Decimal(0), "e", AT)
    assert [(e.account, e.amount) for e in untaxed.entries] == [
        ("conekta:receivable", -796),
        ("conekta:fees", 796),
    ]


def test_refund_returns_money_to_the_customer_and_keeps_the_fee() -> None:
    posting = ledger.refund(Refund("r1", 15000, AT), CHARGE, "e")
    assert posting.business_key == "refund:ord_a:r1"
    assert {e.account: e.amount for e in posting.entries} == {
        "customer:cus_1": 15000,
        "conekta:receivable": -15000,
    }


@pytest.mark.parametrize(
    ("move", "expected"),
    [
        (Move("opened", 20000, 0), {"conekta:disputed": 20000, "conekta:receivable": -20000}),
        (Move("won", -20000, 0), {"conekta:disputed": -20000, "conekta:receivable": 20000}),
        (Move("lost", -20000, 20000), {"conekta:disputed": -20000, "customer:cus_1": 20000}),
        (Move("lost", 0, 20000), {"customer:cus_1": 20000, "conekta:receivable": -20000}),
        (Move("adjusted", -5000, 0), {"conekta:disputed": -5000, "conekta:receivable": 5000}),
    ],
)
def test_chargeback_moves(move: Move, expected: dict[str, int]) -> None:
    posting = ledger.chargeback(ledger.chargeback_key("chbk_1", move.step), move, CHARGE, "e", AT)
    assert posting.business_key == f"chargeback:chbk_1:{move.step}"
    assert posting.kind == f"chargeback_{move.step}"
    assert {e.account: e.amount for e in posting.entries} == expected
    assert sum(e.amount for e in posting.entries) == 0


def test_plan_new_order_then_duplicates() -> None:
    paid = incoming("order.paid", "ord_a", event_id="a" * 24)
    again = Incoming(paid.event, paid.body, None)
    other_id_same_money = incoming("order.paid", "ord_a", event_id="b" * 24)
    plan = plan_batch([paid, again, other_id_same_money], Booked())
    assert plan.outcomes == ["applied", Outcome.REDELIVERED, "duplicate"]
    assert list(plan.new_orders) == [(False, "ord_a")]
    # once per charge
    assert [k for _, k in plan.postings] == ["payment:ord_a:ch_ord_a", "fee:ord_a:ch_ord_a"]
    assert len(plan.messages) == 1
    assert len(plan.archive) == 2


def test_plan_archived_ids_are_redeliveries() -> None:
    paid = incoming("order.paid", "ord_a")
    plan = plan_batch([paid], Booked(archived_ids=[paid.event.event_id]))
    assert plan.outcomes == [Outcome.REDELIVERED]
    assert not plan.archive and not plan.postings and not plan.messages


def test_plan_late_pending_after_paid_is_stale() -> None:
    current = {(False, "ord_a"): OrderState("paid", "e", AT)}
    plan = plan_batch([incoming("order.pending_payment", "ord_a")], Booked(orders=current))
    assert plan.outcomes == ["stale"]
    assert not plan.changed_orders and not plan.messages and not plan.postings


def test_plan_folds_several_events_of_one_order() -> None:
    pending = incoming("order.pending_payment", "ord_a", created_at=100)
    paid = incoming("order.paid", "ord_a", created_at=200)
    declined = incoming("order.declined", "ord_a", created_at=300)
    plan = plan_batch([pending, paid, declined], Booked())
    assert plan.outcomes == ["applied", "applied", "stale"]
    assert plan.new_orders[(False, "ord_a")].status == "paid"
    messages = [orjson.loads(m.body)["status"] for m in plan.messages]
    assert messages == ["pending_payment", "paid"]


def test_partial_then_full_refund_posts_each_refund_once() -> None:
    paid = incoming("order.paid", "ord_a", amount=40000)
    partial = incoming(
        "order.partially_refunded", "ord_a", amount=40000, refunds=(("r1", 15000, 10),)
    )
    full = incoming(
        "order.refunded", "ord_a", amount=40000, refunds=(("r1", 15000, 10), ("r2", 25000, 11))
    )
    by_charge = wrap(
        charge_refunded_event(
            "ord_a", charge_id="ch_ord_a", amount=40000, refunds=(("r2", 25000, 11),)
        )
    )
    plan = plan_batch([paid, partial, full, by_charge], Booked())
    assert plan.outcomes == ["applied", "applied", "applied", "duplicate"]
    assert money(plan) == {"conekta:fees": 431, "tax:vat_on_fees": 69, "conekta:receivable": -500}
    assert plan.new_orders[(False, "ord_a")].status == "refunded"
    assert [m.routing_key for m in plan.messages] == [
        "order.paid",
        "order.partially_refunded",
        "order.refunded",
    ]


def test_refund_above_the_charge_is_permanent() -> None:
    with pytest.raises(UnapplicableEvent, match="refunds add up"):
        incoming("order.refunded", "ord_a", amount=100, fee=0, refunds=(("r1", 101, 10),))


def test_refunds_across_events_never_exceed_the_charge() -> None:
    """Found by the fuzz: each event's refunds fit the charge, their sum did not."""
    paid = incoming("order.paid", "ord_a", amount=40000)
    first = incoming("order.refunded", "ord_a", amount=40000, refunds=(("r1", 40000, 10),))
    again = incoming("order.refunded", "ord_a", amount=40000, refunds=(("r9", 40000, 11),))
    assert plan_batch([paid, first], Booked()).outcomes == ["applied", "applied"]
    with pytest.raises(UnapplicableEvent, match="would add up to 80000"):
        plan_batch([paid, first, again], Booked())
    booked = ledger.Charge("ch_ord_a", "ord_a", 40000, "MXN", False, "cus_1", 500)
    r1 = RefundRow("r1", False, "ch_ord_a", "ord_a", 40000, "MXN", None, AT, "e")
    by_charge = wrap(
        charge_refunded_event("ord_a", charge_id="ch_ord_a", amount=40000, refunds=(("r9", 1, 11),))
    )
    with pytest.raises(UnapplicableEvent, match="would add up to 40001"):
        plan_batch(
            [by_charge],
            Booked(charges={(False, "ch_ord_a"): booked}, refunds={(False, "r1"): r1}),
        )


@pytest.mark.parametrize("value", [["ch"], 12, {"a": 1}, ""])
def test_an_id_that_is_not_text_is_permanent(value: object) -> None:
    document = orjson.loads(chargeback_event("charge.chargeback.created", "chbk_1", charge_id="ch"))
    document["data"]["object"]["charge_id"] = value
    with pytest.raises(UnapplicableEvent, match="not an id"):
        parse_order_event(orjson.dumps(document))


def test_a_time_beyond_the_calendar_is_permanent() -> None:
    document = orjson.loads(order_event("order.paid", "ord_a"))
    document["data"]["object"]["charges"]["data"][0]["paid_at"] = 10**15
    with pytest.raises(UnapplicableEvent, match="not a unix time"):
        parse_order_event(orjson.dumps(document))


def test_chargeback_needs_its_charge_booked() -> None:
    opened = wrap(chargeback_event("charge.chargeback.created", "chbk_1", charge_id="ch_x"))
    with pytest.raises(UnknownCharge):
        plan_batch([opened], Booked())


def test_chargeback_opened_then_lost() -> None:
    paid = incoming("order.paid", "ord_a", amount=20000, fee=796, customer_id="cus_1")
    opened = wrap(
        chargeback_event("charge.chargeback.created", "chbk_1", charge_id="ch_ord_a", created_at=10)
    )
    lost = wrap(
        chargeback_event("charge.chargeback.lost", "chbk_1", charge_id="ch_ord_a", created_at=20)
    )
    plan = plan_batch([paid, opened, lost], Booked())
    assert plan.outcomes == ["applied", "applied", "applied"]
    assert money(plan) == {"conekta:receivable": -796, "conekta:fees": 686, "tax:vat_on_fees": 110}
    assert plan.chargebacks[(False, "chbk_1")].status == "lost"
    # the payment status does not move back
    assert plan.new_orders[(False, "ord_a")].status == "paid"
    assert orjson.loads(plan.messages[-1].body)["chargeback"] == {
        "id": "chbk_1",
        "status": "lost",
        "conekta_status": "lost",
    }


def test_expired_on_a_paid_order_is_a_stale_contradiction() -> None:
    current = {(False, "ord_a"): OrderState("paid", "e", AT)}
    plan = plan_batch([incoming("order.expired", "ord_a")], Booked(orders=current))
    assert plan.outcomes == ["stale"]
    assert [e.type for e in plan.contradictions] == ["order.expired"]
    assert not plan.postings and not plan.messages


def test_unpaid_order_expires() -> None:
    pending = incoming("order.pending_payment", "ord_a", created_at=100)
    expired = incoming("order.expired", "ord_a", created_at=200)
    plan = plan_batch([pending, expired], Booked())
    assert plan.outcomes == ["applied", "applied"]
    assert plan.new_orders[(False, "ord_a")].status == "expired"
    assert not plan.postings and not plan.contradictions


def test_other_mode_is_archived_only() -> None:
    test_paid = incoming("order.paid", "ord_a", livemode=False)
    plan = plan_batch([test_paid], Booked(), modes={True})
    assert plan.outcomes == [Outcome.OTHER_MODE]
    assert len(plan.archive) == 1
    assert not plan.postings and not plan.new_orders and not plan.messages


def test_test_and_live_keys_never_meet() -> None:
    live = incoming("order.paid", "ord_a", livemode=True)
    test = incoming("order.paid", "ord_a", livemode=False)
    plan = plan_batch([live, test], Booked())
    assert set(plan.postings) == {
        (True, "payment:ord_a:ch_ord_a"),
        (True, "fee:ord_a:ch_ord_a"),
        (False, "payment:ord_a:ch_ord_a"),
        (False, "fee:ord_a:ch_ord_a"),
    }


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (
            "order.pending_payment.json",
            {"type": "oxxo", "reference": "93000262280678", "expires_at": 1680480000},
        ),
        ("order.expired.json", {"type": "spei", "clabe": "734180008033435128"}),
    ],
)
def test_cash_and_spei_messages_carry_how_to_pay(sample: str, expected: dict[str, Any]) -> None:
    from testkit.events import SAMPLES

    plan = plan_batch([wrap((SAMPLES / sample).read_bytes())], Booked())
    [message] = plan.messages
    body = orjson.loads(message.body)
    assert expected.items() <= body["payment"].items()
    assert body["livemode"] is True
    assert (body["refunded_amount"], body["chargeback"]) == (0, None)
