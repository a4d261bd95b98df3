"""The archive of raw events: read one, list by outcome, or re-apply a selection through the
worker's own path; how a body is judged (`invalid` events: ops/invalid.py judges them again)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from core.errors import UnapplicableEvent, UnknownCharge
from core.event import event_key
from core.verifier import Verifier
from domain.order_event import HANDLED_TYPES, parse_order_event
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Incoming
from ops import audit
from store import Store
from worker import orders
from worker.provenance import vouch

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
    """One archived event by its key or by the event's own id (an odd id has a hashed key)."""
    row = await store.events.get(event_id)
    if row is None and (key := event_key(event_id, b"")) != event_id:
        row = await store.events.get(key)
    if row is None:
        return None
    result = {"state": "archived", **_listed(row)}
    result["request"] = orjson.loads(row["request"]) if row["request"] is not None else None
    try:
        result["body"] = orjson.loads(row["body"])
    except orjson.JSONDecodeError:
        result["body"] = row["body"].decode("utf-8", "replace")
    return result


async def listing(store: Store, outcome: Outcome, since: datetime | None) -> list[dict[str, Any]]:
    """Every archived event of one outcome, in Conekta's order, without bodies."""
    found: list[dict[str, Any]] = []
    cursor: tuple[datetime, str] = (BEGINNING, "")
    while rows := await store.events.of_outcome(
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
    store: Store,
    selection: ReplayFilter,
    actor: str,
    progress: Callable[[Counter[str]], None] = print,
    modes: Collection[bool] = ALL_MODES,
    *,
    verifier: Verifier,
) -> Counter[str]:
    """Re-apply archived events in Conekta's order, a page per transaction; outcome counts.
    Each body is verified again (`verifier.vouch`): one nothing vouches for is counted
    `unverified` and left as it is. Recorded in the audit trail (also when it stops half-way:
    what was applied stays)."""
    totals: Counter[str] = Counter()
    async with _audited(store, actor, "events.replay", selection, totals):
        await _replay_pages(store, selection, totals, progress, modes, verifier)
    return totals


async def _replay_pages(
    store: Store,
    selection: ReplayFilter,
    totals: Counter[str],
    progress: Callable[[Counter[str]], None],
    modes: Collection[bool],
    verifier: Verifier,
) -> None:
    cursor: tuple[datetime, str] = (BEGINNING, "")
    while True:
        rows = await store.events.page(
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
            body, request = bytes(row["body"]), _json(row["request"])
            provenance = vouch(verifier, body, request, row["provenance"])
            if provenance is None:
                totals[Outcome.UNVERIFIED.value] += 1
                continue
            try:
                event = parse_order_event(body)
            except UnapplicableEvent:
                totals["unapplicable"] += 1
                continue
            items.append(Incoming(event, body, row["received_at"], provenance=provenance))
        try:
            outcomes = orders.report(await store.apply.batch(items, replay=True, modes=modes))
        except UnknownCharge:
            outcomes = await _one_by_one(store, items, modes, totals)
        totals.update(outcome.value for outcome in outcomes)
        progress(totals)


def _json(value: Any) -> Any:
    """A jsonb column as read (JSON text) as values."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def _one_by_one(
    store: Store, items: list[Incoming], modes: Collection[bool], totals: Counter[str]
) -> list[Outcome]:
    """A page with a refund or chargeback whose charge was never booked: apply the rest, and
    count those (they stay archived as they were; replay them once their payment is in)."""
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes += orders.report(await store.apply.batch([item], replay=True, modes=modes))
        except UnknownCharge:
            totals["unknown_charge"] += 1
    return outcomes


@asynccontextmanager
async def _audited(
    store: Store, actor: str, action: str, selection: ReplayFilter, totals: Counter[str]
) -> AsyncIterator[None]:
    """Record the run in the audit trail, also when it stops half-way (what was applied stays)."""
    try:
        yield
    finally:
        details = {k: str(v) if v is not None else None for k, v in vars(selection).items()}
        await audit.record(store, actor, action, sum(totals.values()), {**details, **totals})
