"""Issue 22's sequences, each through plan_batch on a memory store: every cent where Conekta put
it, whatever the order of arrival."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import permutations
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import CurrencyMismatch
from domain import chargeback as chargeback_rules
from domain import fee as fee_rules
from domain import refund as refund_rules
from domain.order_event import parse_order_event
from domain.plan import Incoming
from testkit.events import (
    charge_refunded_event,
    chargeback_event,
    order_event,
    order_event_document,
    order_of,
)
from testkit.ledger_sim import MemoryStore

A, F = 20_000, 796
CUSTOMER = "customer:cus_1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def wrap(body: bytes) -> Incoming:
    return Incoming(parse_order_event(body), body, None)


def paid(**kwargs: Any) -> Incoming:
    options: dict[str, Any] = {"amount": A, "fee": F, "customer_id": "cus_1", "created_at": 100}
    return wrap(order_event("order.paid", "ord_a", **(options | kwargs)))


def refunded(refunds: tuple[Any, ...], at: int, event_type: str = "order.refunded") -> Incoming:
    body = order_event(
        event_type, "ord_a", amount=A, fee=F, customer_id="cus_1", refunds=refunds, created_at=at
    )
    return wrap(body)


def chargeback(event_type: str, at: int, status: str | None = None, opened: int = 200) -> Incoming:
    body = chargeback_event(
        event_type,
        "chbk_1",
        charge_id="ch_ord_a",
        created_at=at,
        opened_at=opened,
        status=status,
        event_id=f"{at:08x}{abs(hash((event_type, status))) % 10**16:016x}",
    )
    return wrap(body)


def run(*events: Incoming, rate: Decimal = fee_rules.DEFAULT_TAX_RATE) -> MemoryStore:
    store = MemoryStore(rate)
    for event in events:
        store.apply([event])
    return store


def every_order(*events: Incoming) -> list[MemoryStore]:
    """The payment first (a chargeback or charge event before it is retried until it is)."""
    return [run(events[0], *rest) for rest in permutations(events[1:])]


FEES = {"conekta:receivable": -F, "conekta:fees": 686, "tax:vat_on_fees": 110}


def test_payment_then_fee_from_a_later_event_posts_the_fee_once() -> None:
    store = run(paid(fee=None), refunded((), 150, "order.paid"), paid(fee=F, created_at=160))
    assert store.money() == {"conekta:receivable": A - F, "conekta:fees": 686,
                             "tax:vat_on_fees": 110, CUSTOMER: -A}  # fmt: skip
    assert [p.kind for p in store.postings.values()] == ["payment", "fee"]
    assert store.charges[(False, "ch_ord_a")].fee == F


def test_a_payment_already_holding_its_fee_gets_no_second_one() -> None:
    store = run(paid(fee=F))
    store.postings.clear()  # what the migration leaves: the charge booked with its fee known
    store.apply([paid(fee=F, created_at=150, event_id="f" * 24)])
    assert store.money() == {}


@pytest.mark.parametrize(
    ("rate", "fee", "split"),
    [
        (Decimal("0.16"), 1255, (1082, 173)),  # the seed: (3.4 % x 23000 + 300) x 1.16
        (Decimal("0.16"), 796, (686, 110)),
        (Decimal(1), 5, (3, 2)),  # 2.5: half rounds up
        (Decimal(0), 796, (796, 0)),
        (Decimal("0.16"), 0, (0, 0)),
    ],
)
def test_fee_split(rate: Decimal, fee: int, split: tuple[int, int]) -> None:
    assert fee_rules.split(fee, rate) == split


@given(
    fee=st.integers(-(10**12), 10**12),
    rate=st.decimals(min_value=0, max_value=Decimal("0.9999"), places=4),
)
def test_fee_split_matches_decimal_rounding(fee: int, rate: Decimal) -> None:
    """The integer split is the decimal one: |F| / (1 + r), rounded half up, signed as F."""
    whole = (abs(Decimal(fee)) / (1 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    expected = fee if rate == 0 else int(whole) if fee >= 0 else -int(whole)
    assert fee_rules.split(fee, rate) == (expected, fee - expected)


def test_untaxed_fees_stay_whole() -> None:
    assert run(paid(), rate=Decimal(0)).money()["conekta:fees"] == F


@pytest.mark.parametrize("ending", ["won", "lost"])
def test_chargeback_reversals_converge_whatever_the_arrival(ending: str) -> None:
    """won -> lost (pre-arbitration) and lost -> won (reversal): Conekta's latest says."""
    first = "lost" if ending == "won" else "won"
    events = (
        paid(),
        chargeback("charge.chargeback.created", 200),
        chargeback(f"charge.chargeback.{first}", 300),
        chargeback(f"charge.chargeback.{ending}", 400),
    )
    expected = {"won": {"conekta:receivable": A}, "lost": {}}[ending]
    for store in every_order(*events):
        assert store.chargebacks[(False, "chbk_1")].conekta_status == ending
        money = store.money()
        assert money.get("conekta:disputed", 0) == 0
        assert money.get(CUSTOMER, 0) == {"won": -A, "lost": 0}[ending]
        assert money.get("conekta:receivable", 0) == expected.get("conekta:receivable", 0) - F


def test_full_refund_then_chargeback_lost_moves_nothing_twice() -> None:
    events = (
        paid(),
        refunded((("re_1", A, 150),), 150),
        chargeback("charge.chargeback.lost", 300),
    )
    for store in every_order(*events):
        assert store.money() == FEES | {"conekta:receivable": -F}  # the customer back at 0
        assert store.chargebacks[(False, "chbk_1")].amount == 0


def test_partial_refund_before_the_chargeback_lowers_what_is_withheld_even_when_late() -> None:
    events = (
        paid(),
        refunded((("re_1", 5000, 150),), 500, "order.partially_refunded"),  # created before
        chargeback("charge.chargeback.created", 250),
        chargeback("charge.chargeback.lost", 300),
    )
    for store in every_order(*events):
        money = store.money()
        assert money.get(CUSTOMER, 0) == 0  # -A + 5000 refunded + 15000 lost
        assert money.get("conekta:disputed", 0) == 0
        assert store.chargebacks[(False, "chbk_1")].amount == A - 5000
    late = run(*events[:1], *events[2:], events[1])
    kinds = [p.kind for p in late.postings.values()]
    assert kinds.count("chargeback_adjusted") == 1  # adjusted once, never moved twice


def test_a_refund_after_the_chargeback_leaves_its_target() -> None:
    store = run(
        paid(),
        chargeback("charge.chargeback.created", 250),
        refunded((("re_1", 5000, 260),), 270, "order.partially_refunded"),
    )
    assert store.money()["conekta:disputed"] == A


def test_conekta_amount_is_the_target_once_known() -> None:
    store = run(paid(), chargeback("charge.chargeback.created", 250))
    key = (False, "chbk_1")
    store.chargebacks[key].conekta_amount = 12_345  # what settlement (issue 23) will write
    store.apply([chargeback("charge.chargeback.under_review", 260)])
    assert store.money()["conekta:disputed"] == 12_345
    assert store.chargebacks[key].amount == 12_345


def test_target_rule() -> None:
    refunds = [(3000, T0), (2000, T0.replace(day=3)), (0, T0)]
    opened = T0.replace(day=2)
    assert chargeback_rules.target(A, refunds, opened) == A - 3000
    assert chargeback_rules.target(A, refunds, opened, conekta_amount=-19_000) == 19_000
    assert chargeback_rules.target(100, [(150, T0)], opened) == 0  # never below 0
    assert chargeback_rules.target(A, [(3000, opened)], opened) == A  # not before: same second


@pytest.mark.parametrize(
    ("status", "disputed", "customer", "fulfillment"),
    [
        ("open", A, -A, "open"),
        ("pending", A, -A, "open"),
        ("action_required", A, -A, "open"),
        ("rt", A, -A, "open"),
        ("rt_sent", A, -A, "under_review"),
        ("represented", A, -A, "under_review"),
        ("pending_review", A, -A, "under_review"),
        ("under_review", A, -A, "under_review"),
        ("won", 0, -A, "won"),
        ("covered", 0, -A, "won"),
        ("lost", 0, 0, "lost"),
        ("something_new", A, -A, "open"),
    ],
)
def test_every_chargeback_status_has_a_rule(
    status: str, disputed: int, customer: int, fulfillment: str
) -> None:
    store = run(paid(), chargeback("charge.chargeback.updated", 300, status=status))
    money = store.money()
    assert money.get("conekta:disputed", 0) == disputed
    assert money.get(CUSTOMER, 0) == customer
    assert chargeback_rules.rule(status).fulfillment == fulfillment
    row = store.chargebacks[(False, "chbk_1")]
    assert row.status == fulfillment
    assert row.conekta_status == ("open" if status == "something_new" else status)


def test_updated_carrying_lost_is_lost_and_its_message_says_both() -> None:
    store = MemoryStore()
    store.apply([paid()])
    from domain.plan import plan_batch

    plan = plan_batch([chargeback("charge.chargeback.updated", 300, "lost")], store.booked())
    body = orjson.loads(plan.messages[0].body)
    assert body["chargeback"] == {"id": "chbk_1", "status": "lost", "conekta_status": "lost"}
    assert [p.kind for p in plan.postings.values()] == ["chargeback_opened", "chargeback_lost"]


def test_stale_chargeback_events_change_nothing() -> None:
    store = run(
        paid(),
        chargeback("charge.chargeback.lost", 400),
        chargeback("charge.chargeback.won", 300),
        chargeback("charge.chargeback.created", 200),
    )
    assert store.chargebacks[(False, "chbk_1")].conekta_status == "lost"
    assert sorted(store.outcomes.values())[-2:] == ["stale", "stale"]


def test_an_update_without_status_does_not_hide_an_older_status() -> None:
    """lost at 300, an update saying no status at 500, won at 400 arriving last: won."""
    events = (
        paid(),
        chargeback("charge.chargeback.lost", 300),
        chargeback("charge.chargeback.updated", 500, status="no_such_status"),
        chargeback("charge.chargeback.won", 400),
    )
    for store in every_order(*events):
        assert store.chargebacks[(False, "chbk_1")].conekta_status == "won"
        assert store.money().get(CUSTOMER) == -A


@pytest.mark.parametrize("ending", ["failed", "canceled", "expired", "rejected"])
def test_a_pending_refund_is_recorded_and_a_failed_one_never_posts(ending: str) -> None:
    pending = refunded((("re_1", 5000, 150, "pending"),), 150, "order.partially_refunded")
    failed = refunded((("re_1", 5000, 150, ending),), 160, "order.partially_refunded")
    for store in every_order(paid(), pending, failed):
        assert store.money() == {"conekta:receivable": A - F, CUSTOMER: -A} | {
            "conekta:fees": 686,
            "tax:vat_on_fees": 110,
        }
        assert store.refunds[(False, "re_1")].status == ending


def test_a_pending_refund_posts_when_a_later_event_says_it_moved() -> None:
    pending = refunded((("re_1", 5000, 150, "pending"),), 150, "order.partially_refunded")
    store = run(paid(), pending)
    assert CUSTOMER in store.money() and store.money()[CUSTOMER] == -A
    assert store.outcomes[pending.event_id] == "applied"  # recorded: orders show has it
    store.apply([refunded((("re_1", 5000, 150, "succeeded"),), 170, "order.partially_refunded")])
    assert store.money()[CUSTOMER] == -A + 5000
    store.apply([refunded((("re_1", 5000, 150),), 180, "order.partially_refunded")])
    assert store.money()[CUSTOMER] == -A + 5000  # once


def test_a_moved_refund_that_fails_later_is_reversed() -> None:
    store = run(
        paid(),
        refunded((("re_1", 5000, 150),), 150, "order.partially_refunded"),
        refunded((("re_1", 5000, 150, "failed"),), 170, "order.partially_refunded"),
        refunded((("re_1", 5000, 150),), 160, "order.partially_refunded"),  # stale: stays failed
    )
    assert store.money()[CUSTOMER] == -A
    assert [p.kind for p in store.postings.values()][-2:] == ["refund", "refund_reversed"]


def test_refund_state_only_moves_forward() -> None:
    assert refund_rules.merge(None, "pending") is None
    assert refund_rules.merge("pending", None) is None
    assert refund_rules.merge("failed", None) == "failed"
    assert refund_rules.merge(None, "expired") == "expired"


def test_a_refund_in_another_currency_than_its_charge_is_dead_lettered() -> None:
    store = run(paid())
    document = orjson.loads(
        charge_refunded_event("ord_a", charge_id="ch_ord_a", amount=A, refunds=(("re_1", 1, 5),))
    )
    document["data"]["object"]["currency"] = "USD"
    with pytest.raises(CurrencyMismatch, match="in USD, the charge was paid in MXN"):
        store.apply([wrap(orjson.dumps(document))])


def test_the_customer_is_fixed_when_the_payment_is_booked() -> None:
    """First event with the e-mail only, a later one with customer_id: the refund and the
    chargeback go back to the account the payment credited."""
    first = paid(customer_id=None, email="Buyer@Example.com")
    later = refunded((("re_1", 5000, 150),), 150, "order.partially_refunded")  # cus_1
    store = run(first, later, chargeback("charge.chargeback.lost", 300))
    accounts = {e.account for p in store.postings.values() for e in p.entries}
    assert "customer:buyer@example.com" in accounts
    assert "customer:cus_1" not in accounts
    assert store.money().get("customer:buyer@example.com", 0) == 0  # -A + 5000 + 15000


def test_several_paid_charges_each_post_and_a_total_above_the_order_is_flagged() -> None:
    document = order_event_document("order.paid", "ord_a", amount=A, fee=F, customer_id="cus_1")
    charges = order_of(document)["charges"]
    second = dict(charges["data"][0], id="ch_2", fee=None)
    charges["data"].append(second)
    charges["has_more"] = True
    store = MemoryStore()
    from domain.plan import plan_batch

    plan = plan_batch([wrap(orjson.dumps(document))], store.booked())
    assert [p.business_key for p in plan.postings.values()] == [
        "payment:ord_a:ch_ord_a",
        "fee:ord_a:ch_ord_a",
        "payment:ord_a:ch_2",
    ]
    assert [e.order_id for e in plan.overpaid] == ["ord_a"]
    assert [(f.order_id, f.reason) for f in plan.flags] == [("ord_a", "charges has_more")]
