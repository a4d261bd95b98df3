"""Invalid events: bodies Conekta signed that were not usable events, kept in the archive
(outcome `invalid`, with the reason naming the field). The CLI, the console and the admin API call
these actions:

- list them, with the reason and the event's own id;
- preview (a dry run): judge each selected body again in memory, nothing written, and say what it
  would become now (applied, still invalid with today's reason, ignored, other mode);
- replay: judge them again through the worker's path (after a schema or code fix), a page per
  transaction; usable ones are applied as if new, the rest archived again with today's reason;
- purge: they become purge tombstones (outcome `purged`, who and why in the note); the body stays
  (store first), and a resend of the same event stays refused, as after a dead-letter purge.

Select by keys, every one, or filters (type, created_at window); each action is audited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from core.database import Record
from core.errors import BadRequest, UnknownCharge
from core.verifier import Verifier
from domain.archive import ArchiveRow
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Incoming
from ops import audit
from ops.actions import ActionResult, Progress, Selection, audit_details
from ops.events import BEGINNING
from ops.paging import decode_cursor, page_of, page_size
from store import Store
from worker import orders
from worker.judge import judged_row
from worker.provenance import vouch

PAGE = 256
REPLAY_ACTION = "events.replay_invalid"
PURGE_ACTION = "events.purge_invalid"
UNKNOWN_CHARGE = "unknown_charge"  # a refund or chargeback whose payment is not booked yet


WHAT = "invalid events"
FILTERS = ("type", "since", "until")  # what selects invalid events besides ids and all


def params(selection: Selection) -> dict[str, Any]:
    """The store's selection parameters (no filter at all: every one)."""
    return {
        "ids": list(selection.ids),
        "event_type": selection.event_type,
        "since": selection.since,
        "until": selection.until,
    }


UNVERIFIED = Outcome.UNVERIFIED.value  # a verdict: nothing vouches for the body


@dataclass(frozen=True)
class Verdict:
    outcome: str  # what judging the body now would archive: applied, invalid, ignored, other_mode
    text: str


def verdict(judged: Incoming | ArchiveRow, modes: Collection[bool] = ALL_MODES) -> Verdict:
    """What a replay would make of a body judged again (archive.judged_row); pure."""
    if isinstance(judged, ArchiveRow):
        if judged.outcome is Outcome.INVALID:
            return Verdict(Outcome.INVALID.value, f"still invalid: {judged.reason}")
        return Verdict(
            judged.outcome.value, f"{judged.outcome.value}: no handler for {judged.type}"
        )
    event = judged.event
    if event.livemode not in modes:
        mode = "live" if event.livemode else "test"
        return Verdict(Outcome.OTHER_MODE.value, f"other_mode: {mode} events are not accepted here")
    subject = event.order_id or (f"charge {event.charge_id}" if event.charge_id else "no order")
    # The order's rules may still find it stale or a duplicate: the replay's outcomes say.
    return Verdict(Outcome.APPLIED.value, f"applied as {event.type} for {subject}")


def summary(row: Record) -> dict[str, Any]:
    """One line's worth of an invalid event (no body)."""
    times = ("created_at", "received_at", "applied_at")
    return {
        "event_id": row["event_id"],
        "original_id": row["original_id"],
        "type": row["type"],
        "order_id": row["order_id"],
        "reason": row["reason"],
        **{name: row[name].isoformat() if row[name] else None for name in times},
    }


async def listing(
    store: Store,
    selection: Selection | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """`invalid` events in Conekta's order (all, or those of the selection), a page at a time."""
    selected = params(selection or Selection())
    after = decode_cursor(cursor, datetime, str) if cursor else (BEGINNING, "")
    rows = await store.invalid.page(
        after=after, limit=page_size(limit) + 1, bodies=False, **selected
    )
    return page_of(rows, limit, lambda row: (row["created_at"], row["event_id"]), item=summary)


async def count(store: Store, selection: Selection) -> int:
    """How many `invalid` events the selection matches now (a purge's "purge N")."""
    selection.check(FILTERS)
    return await store.invalid.count(**params(selection))


async def preview(
    store: Store,
    action: str,
    selection: Selection,
    modes: Collection[bool] = ALL_MODES,
    verifier: Verifier | None = None,
) -> ActionResult:
    """The dry run of a replay or purge: what it would take, and what judging each body again
    would make of it now (in memory: nothing is written); with `verifier`, a body nothing
    vouches for says so (a replay leaves it `invalid`)."""
    selection.check(FILTERS)
    result, found = ActionResult(action, True), set[str]()
    async for rows in _pages(store, selection):
        for row in rows:
            body = bytes(row["body"])
            if verifier and vouch(verifier, body, _json(row["request"]), row["provenance"]) is None:
                seen = Verdict(UNVERIFIED, "unverified: its DIGEST does not verify; not replayed")
            else:
                seen = verdict(judged_row(body, row["received_at"]), modes)
            result.add_matched({**summary(row), "verdict": seen.outcome, "note": seen.text})
            result.totals[seen.outcome] += 1
        found.update(_asked_for(selection, rows))
    result.not_found = selection.not_found(found)
    return result


async def replay(
    store: Store,
    selection: Selection,
    actor: str,
    *,
    reason: str = "",
    progress: Progress | None = None,
    modes: Collection[bool] = ALL_MODES,
    verifier: Verifier,
) -> ActionResult:
    """Judge the selected `invalid` events again (after a schema or code fix), a page per
    transaction: usable ones are applied as if new, the rest archived again (`invalid` with
    today's reason, or `ignored`). A body nothing vouches for (`verifier.vouch`) stays
    `invalid`, counted `unverified`. Recorded in the audit trail, also when it stops half-way
    (what was applied stays)."""
    selection.check(FILTERS)
    total = await store.invalid.count(**params(selection))
    result, found = ActionResult("replay", False), set[str]()
    try:
        async for rows in _pages(store, selection):
            outcomes = await _rejudge_page(store, rows, modes, verifier)
            for row, outcome in zip(rows, outcomes, strict=True):
                result.add_matched({**summary(row), "outcome": outcome})
                result.totals[outcome] += 1
            result.add_done([row["event_id"] for row in rows])
            found.update(_asked_for(selection, rows))
            if progress:
                progress(result.done_count, max(total, result.done_count))
    finally:
        result.not_found = selection.not_found(found)
        if result.done_count:
            details = audit_details(WHAT, selection, result, reason)
            result.audit_id = await audit.record(
                store, actor, REPLAY_ACTION, result.done_count, details
            )
    return result


async def purge(
    store: Store,
    selection: Selection,
    actor: str,
    *,
    reason: str,
    expect: int | None = None,
    progress: Progress | None = None,
) -> ActionResult:
    """The selected `invalid` events become purge tombstones, with who and why, in one
    transaction with the audit entry. `expect`: the count the person confirmed ("purge N");
    refused when the selection matches another number now."""
    if not reason.strip():
        raise BadRequest("a purge needs a reason (it is kept in the audit trail)")
    selection.check(FILTERS)
    async with store.invalid.claim(**params(selection)) as claim:
        if expect is not None and len(claim.rows) != expect:
            raise BadRequest(
                f"the selection matches {len(claim.rows)} invalid event(s) now, not {expect}:"
                " look at the preview again"
            )
        result = ActionResult("purge", False)
        for row in claim.rows:
            result.add_matched(summary(row))
        ids = [str(row["event_id"]) for row in claim.rows]
        for start in range(0, len(ids), PAGE):
            await claim.purge(ids[start : start + PAGE], f"purged by {actor}: {reason}")
            result.add_done(ids[start : start + PAGE])
            if progress:
                progress(result.done_count, len(ids))
        result.totals[Outcome.PURGED.value] = len(ids)
        result.not_found = selection.not_found(_asked_for(selection, claim.rows))
        if result.done_count:
            details = audit_details(WHAT, selection, result, reason)
            result.audit_id = await claim.audit(actor, PURGE_ACTION, result.done_count, details)
    return result


async def _pages(store: Store, selection: Selection) -> AsyncIterator[list[Record]]:
    """The selected `invalid` events with their bodies, a page at a time, in Conekta's order."""
    cursor: tuple[datetime, str] = (BEGINNING, "")
    while rows := await store.invalid.page(
        after=cursor, limit=PAGE, bodies=True, **params(selection)
    ):
        cursor = (rows[-1]["created_at"], rows[-1]["event_id"])
        yield rows


async def _rejudge_page(
    store: Store, rows: Sequence[Record], modes: Collection[bool], verifier: Verifier
) -> list[str]:
    """The new outcome of each row, in order: judged again and written, one transaction."""
    judged: list[Incoming | ArchiveRow] = []
    vouched: list[bool] = []
    for row in rows:
        body, request = bytes(row["body"]), _json(row["request"])
        provenance = vouch(verifier, body, request, row["provenance"])
        vouched.append(provenance is not None)
        if provenance is None:
            continue
        seen = judged_row(body, row["received_at"])
        if isinstance(seen, ArchiveRow):  # keeps its place (its created_at may be a guess)
            seen = replace(seen, created_at=row["created_at"])
        judged.append(replace(seen, provenance=provenance))
    done = iter(await _rejudge_judged(store, judged, modes))
    return [next(done) if ok else Outcome.UNVERIFIED.value for ok in vouched]


async def _rejudge_judged(
    store: Store, judged: Sequence[Incoming | ArchiveRow], modes: Collection[bool]
) -> list[str]:
    if not judged:
        return []
    try:
        return await _rejudge(store, judged, modes)
    except UnknownCharge:  # a refund or chargeback whose payment is not booked: one by one
        outcomes: list[str] = []
        for one in judged:
            try:
                outcomes += await _rejudge(store, [one], modes)
            except UnknownCharge:
                outcomes.append(UNKNOWN_CHARGE)  # stays `invalid`; replay it again later
        return outcomes


async def _rejudge(
    store: Store, judged: Sequence[Incoming | ArchiveRow], modes: Collection[bool]
) -> list[str]:
    """One transaction: the outcome of each judged row, in order."""
    items = [seen for seen in judged if isinstance(seen, Incoming)]
    archived = [seen for seen in judged if isinstance(seen, ArchiveRow)]
    applied = iter(orders.report(await store.apply.rejudge(items, archived, modes)))
    return [
        next(applied).value if isinstance(seen, Incoming) else seen.outcome.value for seen in judged
    ]


def _json(value: Any) -> Any:
    """A jsonb column as read (JSON text) as values."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _asked_for(selection: Selection, rows: Sequence[Record]) -> set[str]:
    """The keys of these rows that the selection named (none when it names no keys)."""
    asked = set(selection.ids)
    return {row["event_id"] for row in rows if row["event_id"] in asked} if asked else set()
