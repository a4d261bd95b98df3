"""Whether an order event changes the order: the rules that keep an order from moving backwards.

Pure. Events arrive late, twice and out of order; `paid` is final among the statuses handled
here, and between the others the newer event (Conekta's created_at, then event id) wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.outcome import Outcome

FINAL_STATUSES = frozenset({"paid"})


@dataclass(frozen=True)
class OrderState:
    status: str
    last_event_id: str
    last_event_created_at: datetime


def decide(current: OrderState | None, status: str, created_at: datetime, event_id: str) -> Outcome:
    if current is None:
        return Outcome.APPLIED
    if current.status == status:
        return Outcome.DUPLICATE
    if current.status in FINAL_STATUSES:
        return Outcome.STALE
    if status in FINAL_STATUSES:
        return Outcome.APPLIED  # a pending or declined order can always become paid
    if not is_newer(current, created_at, event_id):
        return Outcome.STALE
    return Outcome.APPLIED


def is_newer(current: OrderState, created_at: datetime, event_id: str) -> bool:
    """Later than the last event applied to the order; Conekta's created_at has whole seconds, so
    ties are broken by event id: every order of arrival then ends in the same state."""
    return (created_at, event_id) > (current.last_event_created_at, current.last_event_id)
