from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from domain import ledger
from domain.order_event import PaidCharge, parse_order_event
from domain.order_state import OrderState
from domain.outcome import Outcome
from domain.plan import Incoming, plan_batch
from testkit.events import order_event


def incoming(event_type: str, order_id: str, **kwargs: Any) -> Incoming:
    body = order_event(event_type, order_id, **kwargs)
    return Incoming(parse_order_event(body), body, None)


def test_payment_entries_balance_and_follow_the_accounts() -> None:
    entries = ledger.payment_entries(PaidCharge("ch", 20000, 796), "cus_1")
    assert {e.account: e.amount for e in entries} == {
        "conekta:receivable": 19204,
        "conekta:fees": 796,
        "customer:cus_1": -20000,
    }
    assert sum(e.amount for e in entries) == 0


def test_zero_fee_leaves_no_zero_entry() -> None:
    entries = ledger.payment_entries(PaidCharge("ch", 100, 0), "c")
    assert [e.account for e in entries] == ["conekta:receivable", "customer:c"]


def test_plan_new_order_then_duplicates() -> None:
    paid = incoming("order.paid", "ord_a", event_id="a" * 24)
    again = Incoming(paid.event, paid.body, None)
    other_id_same_money = incoming("order.paid", "ord_a", event_id="b" * 24)
    plan = plan_batch([paid, again, other_id_same_money], {}, [])
    assert plan.outcomes == ["applied", Outcome.REDELIVERED, "duplicate"]
    assert list(plan.new_orders) == ["ord_a"]
    assert list(plan.postings) == ["payment:ord_a:ch_ord_a"]  # one posting for one charge
    assert len(plan.messages) == 1
    assert len(plan.archive) == 2


def test_plan_archived_ids_are_redeliveries() -> None:
    paid = incoming("order.paid", "ord_a")
    plan = plan_batch([paid], {}, [paid.event.event_id])
    assert plan.outcomes == [Outcome.REDELIVERED]
    assert not plan.archive and not plan.postings and not plan.messages


def test_plan_late_pending_after_paid_is_stale() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    current = {"ord_a": OrderState("paid", "e", at)}
    plan = plan_batch([incoming("order.pending_payment", "ord_a")], current, [])
    assert plan.outcomes == ["stale"]
    assert not plan.changed_orders and not plan.messages and not plan.postings


def test_plan_folds_several_events_of_one_order() -> None:
    pending = incoming("order.pending_payment", "ord_a", created_at=100)
    paid = incoming("order.paid", "ord_a", created_at=200)
    declined = incoming("order.declined", "ord_a", created_at=300)
    plan = plan_batch([pending, paid, declined], {}, [])
    assert plan.outcomes == ["applied", "applied", "stale"]
    assert plan.new_orders["ord_a"].status == "paid"
    messages = [orjson.loads(m.body)["status"] for m in plan.messages]
    assert messages == ["pending_payment", "paid"]
