"""The archive record: one raw event as stored, with its outcome; pure.

Every event ends up here exactly once, applied or not, so the archive is the complete history
and the source for `events replay`.

The archive's key (`event_id`) is bounded (core.event.event_key); an event whose own id is not
its key keeps that id in `original_id`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain.outcome import Outcome


@dataclass(frozen=True)
class ArchiveRow:
    """One event as the archive stores it."""

    event_id: str  # the bounded key (see the module docstring)
    type: str
    order_id: str | None
    livemode: bool
    created_at: datetime
    received_at: datetime | None
    outcome: Outcome
    body: bytes
    original_id: str | None = None  # the event's own id when the key is not that id
    reason: str | None = None  # why an `invalid` event could not be applied
    # The webhook's HTTP request (core.request: peer address, headers without credentials);
    # None when there was none (reconcile backfill) or it was not recorded (older versions).
    request: Mapping[str, Any] | None = field(default=None, hash=False)
    # domain.provenance: `signed`, `api` or `attested:<user>`; None for a body nothing vouched
    # for (`invalid` and `unverified` rows) and rows archived before it was recorded
    provenance: str | None = None
    # An order event's data.object.customer_info, as its body carried it: search by customer
    # learns the order's terms from it when the row is archived (store/queries/archive.sql).
    customer_info: Mapping[str, Any] | None = field(default=None, hash=False)


def unhandled_row(
    document: dict[str, Any],
    body: bytes,
    received_at: datetime | None,
    request: Mapping[str, Any] | None = None,
) -> ArchiveRow:
    """The archive row of a valid event (core.event.judge) no handler consumes (`ignored`).

    A valid event's id is Conekta's 24 hex digits: it is its own key.
    """
    resource = document["data"].get("object")
    resource = resource if isinstance(resource, dict) else {}
    order_id = resource.get("id") if resource.get("object") == "order" else resource.get("order_id")
    return ArchiveRow(
        event_id=document["id"],
        type=document["type"],
        order_id=order_id if isinstance(order_id, str) and len(order_id) <= 64 else None,
        livemode=bool(document["livemode"]),
        created_at=datetime.fromtimestamp(document["created_at"], UTC),
        received_at=received_at,
        outcome=Outcome.IGNORED,
        body=body,
        request=request,
    )
