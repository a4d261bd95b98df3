"""Property: whatever the order of arrival, batching and duplication, an order ends in the same
state, its money is posted once, and one fulfillment message goes out per applied change."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.order_event import parse_order_event
from domain.order_state import OrderState
from domain.plan import Incoming, plan_batch
from testkit.events import order_event

TYPES = ["order.pending_payment", "order.declined", "order.paid"]


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Incoming], list[int]]:
    """Distinct events for one order (created_at drawn from a few seconds, so ties happen),
    delivered shuffled, some twice, cut into batches of random sizes."""
    n = draw(st.integers(1, 6))
    events = []
    for i in range(n):
        event_type = draw(st.sampled_from(TYPES))
        at = draw(st.integers(100, 103))
        body = order_event(
            event_type, "ord_p", created_at=at, event_id=f"{at:08x}{i:016x}", charge_id=f"ch_{i}"
        )
        events.append(Incoming(parse_order_event(body), body, None))
    repeats = draw(st.lists(st.sampled_from(events), max_size=4))
    arrival = draw(st.permutations(events + repeats))
    cuts = draw(st.lists(st.integers(1, 4), min_size=1, max_size=len(arrival)))
    return list(arrival), cuts


def expected_status(events: list[Incoming]) -> str:
    if any(i.event.status == "paid" for i in events):
        return "paid"
    latest = max(events, key=lambda i: (i.event.created_at, i.event.event_id))
    return latest.event.status


@settings(max_examples=400, deadline=None)
@given(deliveries())
def test_any_arrival_converges(delivery: tuple[list[Incoming], list[int]]) -> None:
    arrival, cuts = delivery
    state: dict[str, OrderState] = {}
    archived: set[str] = set()
    postings: set[str] = set()
    messages: list[str] = []
    position = 0
    for size in [*cuts, len(arrival)]:
        batch = arrival[position : position + size]
        position += size
        if not batch:
            continue
        plan = plan_batch(batch, state, archived)
        for row in [*plan.new_orders.values(), *plan.changed_orders.values()]:
            state[row.id] = row.state()
        archived |= {row.event_id for row in plan.archive}
        postings |= set(plan.postings)
        messages += [m.message_id for m in plan.messages]
    unique = list({i.event.event_id: i for i in arrival}.values())
    assert state["ord_p"].status == expected_status(unique)
    assert archived == {i.event.event_id for i in unique}
    paid_charges = {
        f"payment:ord_p:ch_{int(i.event.event_id[8:], 16)}"
        for i in unique
        if i.event.status == "paid"
    }
    assert postings == paid_charges
    assert len(messages) == len(set(messages))


def test_ties_are_broken_by_event_id() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    from domain.order_state import decide
    from domain.outcome import Outcome

    current = OrderState("declined", "b" * 24, at)
    assert decide(current, "pending_payment", at, "a" * 24) is Outcome.STALE
    assert decide(current, "pending_payment", at, "c" * 24) is Outcome.APPLIED
