"""How the worker judges a body: an order event to apply, or the archive row of an event without
a handler (`ignored`) or of one that is not usable (`invalid`). On-call's replays judge the
archive the same way (ops/events.py, ops/invalid.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.errors import InvalidEvent, UnapplicableEvent
from core.event import UNKNOWN_TYPE, judge, peek
from domain.archive import ArchiveRow, unhandled_row
from domain.order_event import HANDLED_TYPES, order_event_from
from domain.outcome import Outcome
from domain.plan import Incoming


def invalid_row(
    body: bytes,
    received_at: datetime | None,
    reason: str,
    request: Mapping[str, Any] | None = None,
) -> ArchiveRow:
    """The archive row of a body that is not a usable event; never raises."""
    seen = peek(body)
    return ArchiveRow(
        event_id=seen.key,
        type=seen.type or UNKNOWN_TYPE,
        order_id=None,
        livemode=bool(seen.livemode),
        created_at=seen.created_at or received_at or datetime.now(UTC),
        received_at=received_at,
        outcome=Outcome.INVALID,
        body=body,
        original_id=seen.original_id,
        reason=reason.replace("\x00", "\\u0000"),  # it may quote a value; text holds no NUL
        request=request,
    )


def judged_row(body: bytes, received_at: datetime | None) -> Incoming | ArchiveRow:
    """An archived body judged as the worker judges it: an order event to apply, or the archive
    row of an event without a handler (`ignored`) or of one that is not usable (`invalid`)."""
    try:
        document = judge(body)
        if document["type"] not in HANDLED_TYPES:
            return unhandled_row(document, body, received_at)
        return Incoming(order_event_from(document), body, received_at)
    except (InvalidEvent, UnapplicableEvent) as exc:
        return invalid_row(body, received_at, str(exc))
