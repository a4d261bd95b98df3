"""The archive of raw events: read one, or re-apply a selection through the worker's own path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from core.errors import UnapplicableEvent
from domain.order_event import STATUS_BY_TYPE, parse_order_event
from domain.plan import Incoming
from worker import audit
from worker.store import Store

PAGE = 256
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ReplayFilter:
    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None
    order_id: str | None = None
    include_purged: bool = False  # purge tombstones are skipped unless asked for by name


async def show(store: Store, event_id: str) -> dict[str, Any] | None:
    row = await store.event(event_id)
    if row is None:
        return None
    result = dict(row)
    result["body"] = orjson.loads(row["body"])
    for key in ("created_at", "received_at", "applied_at"):
        result[key] = row[key].isoformat() if row[key] else None
    return result


async def replay(
    store: Store,
    selection: ReplayFilter,
    actor: str,
    progress: Callable[[Counter[str]], None] = print,
) -> Counter[str]:
    """Re-apply archived events in Conekta's order, a page per transaction; outcome counts.
    Recorded in the audit trail (also when it stops half-way: what was applied stays)."""
    totals: Counter[str] = Counter()
    try:
        await _replay_pages(store, selection, totals, progress)
    finally:
        details = {k: str(v) if v is not None else None for k, v in vars(selection).items()}
        await audit.record(
            store, actor, "events.replay", sum(totals.values()), {**details, **totals}
        )
    return totals


async def _replay_pages(
    store: Store,
    selection: ReplayFilter,
    totals: Counter[str],
    progress: Callable[[Counter[str]], None],
) -> None:
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
            include_purged=selection.include_purged,
        )
        if not rows:
            return
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
