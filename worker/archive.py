"""The archive of raw events: read one, or re-apply a selection through the worker's own path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from core.errors import UnapplicableEvent, UnknownCharge
from domain.order_event import HANDLED_TYPES, parse_order_event
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Incoming
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
    modes: Collection[bool] = ALL_MODES,
) -> Counter[str]:
    """Re-apply archived events in Conekta's order, a page per transaction; outcome counts.
    Recorded in the audit trail (also when it stops half-way: what was applied stays)."""
    totals: Counter[str] = Counter()
    try:
        await _replay_pages(store, selection, totals, progress, modes)
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
    modes: Collection[bool],
) -> None:
    cursor: tuple[datetime, str] = (BEGINNING, "")
    while True:
        rows = await store.events_page(
            handled_types=list(HANDLED_TYPES),  # events with no handler stay archived `ignored`
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
        try:
            outcomes = await store.apply_batch(items, replay=True, modes=modes)
        except UnknownCharge:
            outcomes = await _one_by_one(store, items, modes, totals)
        totals.update(outcome.value for outcome in outcomes)
        progress(totals)


async def _one_by_one(
    store: Store, items: list[Incoming], modes: Collection[bool], totals: Counter[str]
) -> list[Outcome]:
    """A page with a refund or chargeback whose charge was never booked: apply the rest, and
    count those (they stay archived as they were; replay them once their payment is in)."""
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes += await store.apply_batch([item], replay=True, modes=modes)
        except UnknownCharge:
            totals["unknown_charge"] += 1
    return outcomes
