"""The archive of raw events: read one, list by outcome, or re-apply a selection through the
worker's own path (`invalid` events are judged again from scratch)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from core.errors import InvalidEvent, UnapplicableEvent
from core.event import UNKNOWN_TYPE, event_key, judge, peek
from domain.archive import ArchiveRow, unhandled_row
from domain.order_event import STATUS_BY_TYPE, order_event_from, parse_order_event
from domain.outcome import Outcome
from domain.plan import Incoming
from worker.store import Store

PAGE = 256
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ReplayFilter:
    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None
    order_id: str | None = None


def invalid_row(body: bytes, received_at: datetime | None, reason: str) -> ArchiveRow:
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
    )


def judged_row(body: bytes, received_at: datetime | None) -> Incoming | ArchiveRow:
    """An archived body judged as the worker judges it: an order event to apply, or the archive
    row of an event without a handler (`ignored`) or of one that is not usable (`invalid`)."""
    try:
        document = judge(body)
        if document["type"] not in STATUS_BY_TYPE:
            return unhandled_row(document, body, received_at)
        return Incoming(order_event_from(document), body, received_at)
    except (InvalidEvent, UnapplicableEvent) as exc:
        return invalid_row(body, received_at, str(exc))


async def show(store: Store, event_id: str) -> dict[str, Any] | None:
    """One archived event by its key or by the event's own id (an odd id has a hashed key)."""
    row = await store.event(event_id)
    if row is None and (key := event_key(event_id, b"")) != event_id:
        row = await store.event(key)
    if row is None:
        return None
    result = _listed(row)
    try:
        result["body"] = orjson.loads(row["body"])
    except orjson.JSONDecodeError:
        result["body"] = row["body"].decode("utf-8", "replace")
    return result


async def listing(store: Store, outcome: Outcome, since: datetime | None) -> list[dict[str, Any]]:
    """Every archived event of one outcome, in Conekta's order, without bodies."""
    found: list[dict[str, Any]] = []
    cursor: tuple[datetime, str] = (BEGINNING, "")
    while rows := await store.events_of_outcome(
        outcome.value, since=since, after=cursor, limit=PAGE
    ):
        cursor = (rows[-1]["created_at"], rows[-1]["event_id"])
        found.extend(_listed(row) for row in rows)
    return found


def _listed(row: Any) -> dict[str, Any]:
    result = {key: value for key, value in row.items() if key != "body"}
    for key in ("created_at", "received_at", "applied_at"):
        result[key] = row[key].isoformat() if row[key] else None
    # The key says where it came from: the event's id, a hash of an odd id, or of the body.
    key = str(row["event_id"])
    result["key_from"] = "body" if key.startswith("body:") else "id hash" if ":" in key else "id"
    return result


async def replay(
    store: Store, selection: ReplayFilter, progress: Callable[[Counter[str]], None] = print
) -> Counter[str]:
    """Re-apply archived events in Conekta's order, a page per transaction; outcome counts."""
    totals: Counter[str] = Counter()
    cursor: tuple[datetime, str] = (BEGINNING, "")
    while True:
        rows = await store.events_page(
            handled_types=list(STATUS_BY_TYPE),  # events with no handler stay archived `ignored`
            since=selection.since,
            until=selection.until,
            event_type=selection.event_type,
            order_id=selection.order_id,
            after=cursor,
            limit=PAGE,
        )
        if not rows:
            return totals
        cursor = (rows[-1]["created_at"], rows[-1]["event_id"])
        items = []
        for row in rows:
            try:
                items.append(
                    Incoming(parse_order_event(row["body"]), row["body"], row["received_at"])
                )
            except UnapplicableEvent:
                totals["unapplicable"] += 1
        totals.update(outcome.value for outcome in await store.apply_batch(items, replay=True))
        progress(totals)


async def replay_invalid(
    store: Store, selection: ReplayFilter, progress: Callable[[Counter[str]], None] = print
) -> Counter[str]:
    """Judge `invalid` events again (after a schema or code fix), a page per transaction:
    usable ones are applied as if new, the rest archived again (`invalid`, with today's reason).
    Outcome counts."""
    totals: Counter[str] = Counter()
    cursor: tuple[datetime, str] = (BEGINNING, "")
    while rows := await store.invalid_events_page(
        since=selection.since, until=selection.until, after=cursor, limit=PAGE
    ):
        cursor = (rows[-1]["created_at"], rows[-1]["event_id"])
        items: list[Incoming] = []
        archived: list[ArchiveRow] = []
        for row in rows:
            judged = judged_row(row["body"], row["received_at"])
            if isinstance(judged, Incoming):
                items.append(judged)
            else:  # keeps its place in the order (an invalid row's created_at may be a guess)
                archived.append(replace(judged, created_at=row["created_at"]))
        outcomes = await store.rejudge([row["event_id"] for row in rows], items, archived)
        totals.update(outcome.value for outcome in outcomes)
        totals.update(row.outcome.value for row in archived)
        progress(totals)
    return totals
