"""The archive record: one raw event as stored, with its outcome; pure.

Every event ends up here exactly once, applied or not, so the archive is the complete history
and the source for `events replay`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from domain.outcome import Outcome


@dataclass(frozen=True)
class ArchiveRow:
    """One event as the archive stores it."""

    event_id: str
    type: str
    order_id: str | None
    livemode: bool
    created_at: datetime
    received_at: datetime | None
    outcome: Outcome
    body: bytes


def unhandled_row(body: bytes, received_at: datetime | None) -> ArchiveRow:
    """The archive row of an event no handler consumes (outcome `ignored`).

    Raises KeyError, TypeError or ValueError (orjson's decode error is one) on a body that is not
    such an event.
    """
    document = orjson.loads(body)
    resource = (document.get("data") or {}).get("object") or {}
    order_id = resource.get("id") if resource.get("object") == "order" else resource.get("order_id")
    return ArchiveRow(
        event_id=document["id"],
        type=document["type"],
        order_id=order_id if isinstance(order_id, str) else None,
        livemode=bool(document["livemode"]),
        created_at=datetime.fromtimestamp(document["created_at"], UTC),
        received_at=received_at,
        outcome=Outcome.IGNORED,
        body=body,
    )
