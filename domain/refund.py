"""When a refund's money has moved; pure.

Conekta's refund object may carry a `status` (its spec's example: `pending`). A refund is posted
to the ledger only once its money moved:

    status                                        state     money
    missing (older API versions), anything else   moved     posted (customer +R, receivable -R)
    pending                                       pending   recorded, not posted
    failed, canceled, cancelled, expired,         failed    never posted; reversed if it was
    rejected, reversed

A refund's state only moves forward, pending < moved < failed, whatever the order in which
events carrying it arrive: a refund seen failed stays failed (a stale event saying `pending` or
moved changes nothing), so every order of arrival ends with the same money.
"""

from __future__ import annotations

PENDING = "pending"
MOVED = "moved"
FAILED = "failed"

PENDING_STATUSES = frozenset({"pending"})
FAILED_STATUSES = frozenset(
    {"failed", "canceled", "cancelled", "expired", "rejected", "reversed", "declined"}
)
_RANK = {PENDING: 0, MOVED: 1, FAILED: 2}


def state(status: str | None) -> str:
    if status in PENDING_STATUSES:
        return PENDING
    if status in FAILED_STATUSES:
        return FAILED
    return MOVED


def can_move(status: str | None) -> bool:
    """Not failed: its money has moved or may still move."""
    return state(status) != FAILED


def moved_amount(status: str | None, amount: int) -> int:
    """What the ledger holds for this refund when its state is that of `status`."""
    return amount if state(status) == MOVED else 0


def merge(current: str | None, incoming: str | None) -> str | None:
    """The status a refund keeps when an event carries `incoming` and `current` is known: the
    furthest state; within a state, the larger text (so arrival order never matters)."""
    key_current = (_RANK[state(current)], current or "")
    key_incoming = (_RANK[state(incoming)], incoming or "")
    return incoming if key_incoming > key_current else current
