"""Property: whatever the order of arrival, batching and duplication, an order ends in the same
state and the same money, each business key is posted once, and one fulfillment message goes
out per applied change. Covers every handled type: payments, partial and full refunds (by two
event types), chargebacks opened then won or lost, expiry, and chargebacks before their payment
(retried, as the worker does, until the payment is booked)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import ledger
from domain.order_event import parse_order_event
from domain.order_state import OrderState, decide
from domain.outcome import Outcome
from domain.plan import Incoming
from testkit.events import charge_refunded_event, chargeback_event, order_event
from testkit.ledger_sim import MemoryStore, deliver

AMOUNT, FEE = 40_000, 500
ORDER = (False, "ord_p")  # (livemode, id): the plan keys orders per mode
R1, R2 = ("re_1", 15_000, 150), ("re_2", 25_000, 160)
ORDER_TYPES = [
    "order.pending_payment",
    "order.declined",
    "order.expired",
    "order.canceled",
    "order.paid",
    "order.partially_refunded",
    "order.refunded",
]


def _order(event_type: str, i: int, at: int) -> Incoming:
    refunds = {"order.partially_refunded": (R1,), "order.refunded": (R1, R2)}.get(event_type, ())
    body = order_event(
        event_type,
        "ord_p",
        created_at=at,
        event_id=f"{at:08x}{i:016x}",
        charge_id="ch_0",
        amount=AMOUNT,
        fee=FEE,
        refunds=refunds,
    )
    return Incoming(parse_order_event(body), body, None)


def _charge(event_type: str, i: int, at: int) -> Incoming:
    event_id = f"{at:08x}{i:016x}"
    if event_type == "charge.refunded":
        body = charge_refunded_event(
            "ord_p", charge_id="ch_0", refunds=(R1, R2), amount=AMOUNT, fee=FEE,
            event_id=event_id, created_at=at,
        )  # fmt: skip
    else:
        body = chargeback_event(
            event_type, "chbk_1", charge_id="ch_0", event_id=event_id, created_at=at, opened_at=120
        )
    return Incoming(parse_order_event(body), body, None)


@st.composite
def event_sets(draw: st.DrawFn) -> list[Incoming]:
    """Distinct events for one order (created_at from a few seconds, so ties happen)."""
    events = []
    for i, event_type in enumerate(draw(st.lists(st.sampled_from(ORDER_TYPES), max_size=6))):
        events.append(_order(event_type, i, draw(st.integers(100, 103))))
    ending = draw(st.sampled_from(["", "charge.chargeback.won", "charge.chargeback.lost"]))
    extra = draw(
        st.lists(
            st.sampled_from(
                ["charge.refunded", "charge.chargeback.created", "charge.chargeback.under_review"]
            ),
            max_size=3,
        )
    )
    for j, event_type in enumerate([*extra, *([ending] if ending else [])]):
        events.append(_charge(event_type, 50 + j, draw(st.integers(100, 106))))
    return events


@settings(max_examples=300, deadline=None)
@given(event_sets(), st.data())
def test_any_arrival_converges(events: list[Incoming], data: st.DataObject) -> None:
    if not events:
        return
    n = len(events)
    results = []
    for _ in range(2):
        arrival = data.draw(
            st.permutations([*range(n), *data.draw(st.lists(st.integers(0, n - 1), max_size=3))])
        )
        cuts = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=len(arrival)))
        results.append(deliver(events, arrival, cuts))
    first, second = results
    assert _status(first) == _status(second) == expected_status(events)
    assert {k: v.conekta_status for k, v in first.chargebacks.items()} == {
        k: v.conekta_status for k, v in second.chargebacks.items()
    }
    assert first.money() == second.money()  # a reversal's keys depend on the arrival order
    for sim in results:
        assert sum(sim.money().values()) == 0
        assert len(sim.messages) == len(set(sim.messages))
        assert len(sim.messages) == sum(o is Outcome.APPLIED for o in sim.outcomes.values())
        _check_invariants(sim)


def _status(sim: MemoryStore) -> str | None:
    return sim.orders[ORDER].status if ORDER in sim.orders else None


def expected_status(events: list[Incoming]) -> str | None:
    current: OrderState | None = None
    for item in sorted(events, key=lambda i: (i.event.created_at, i.event.event_id)):
        e = item.event
        if e.status and decide(current, e.status, e.created_at, e.event_id) is Outcome.APPLIED:
            current = OrderState(e.status, e.event_id, e.created_at)
    return current.status if current else None


def _check_invariants(sim: MemoryStore) -> None:
    refunded = sum(p.amount for p in sim.postings.values() if p.kind == ledger.REFUND)
    paid = sum(p.amount for p in sim.postings.values() if p.kind == ledger.PAYMENT)
    assert refunded <= paid
    open_chargebacks = sum(
        cb.amount for cb in sim.chargebacks.values() if cb.status in {"open", "under_review"}
    )
    assert sim.money().get(ledger.DISPUTED, 0) == open_chargebacks
    if paid:
        assert sim.orders[ORDER].status in {"paid", "partially_refunded", "refunded"}


def test_ties_are_broken_by_event_id() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    current = OrderState("declined", "b" * 24, at)
    assert decide(current, "pending_payment", at, "a" * 24) is Outcome.STALE
    assert decide(current, "pending_payment", at, "c" * 24) is Outcome.APPLIED
