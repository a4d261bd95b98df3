from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.order_state import OrderState, decide
from domain.outcome import Outcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 1, 2, tzinfo=UTC)


def state(status: str, at: datetime = T0) -> OrderState:
    return OrderState(status, "e0", at)


@pytest.mark.parametrize(
    ("current", "status", "at", "expected"),
    [
        (None, "pending_payment", T0, Outcome.APPLIED),
        (None, "declined", T0, Outcome.APPLIED),
        (None, "paid", T0, Outcome.APPLIED),
        (state("pending_payment"), "paid", LATER, Outcome.APPLIED),
        (state("pending_payment", LATER), "paid", T0, Outcome.APPLIED),  # paid always wins
        (state("declined", LATER), "paid", T0, Outcome.APPLIED),
        (state("paid"), "pending_payment", LATER, Outcome.STALE),  # never backwards
        (state("paid"), "declined", LATER, Outcome.STALE),
        (state("paid"), "paid", LATER, Outcome.DUPLICATE),
        (state("pending_payment"), "pending_payment", LATER, Outcome.DUPLICATE),
        (state("pending_payment"), "declined", LATER, Outcome.APPLIED),
        (state("declined"), "pending_payment", LATER, Outcome.APPLIED),  # retried with cash
        (state("declined", LATER), "pending_payment", T0, Outcome.STALE),  # older event
        (state("pending_payment", LATER), "declined", T0, Outcome.STALE),
    ],
)
def test_decide(current: OrderState | None, status: str, at: datetime, expected: Outcome) -> None:
    assert decide(current, status, at, "e1") is expected
