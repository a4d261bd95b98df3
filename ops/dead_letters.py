"""Dead letters that looking cannot lose: on-call's actions on the `dead_letters` table, where
the worker (worker/dead_letters.py) moves every dead-lettered message.

- replay: publish with confirms to where the message first went (fresh attempts), then mark the
  row replayed; the worker's idempotency makes it safe to repeat;
- select by ids, every one, or filters (type, kind, order); a dry run (`preview`) shows what an
  action would take, with the same selection;
- purge: mark the row purged and leave a tombstone in the archive (outcome `purged`, by whom,
  why), so the same event resent by Conekta is recognised and not applied behind the operator's
  back; `events replay --include-purged` can still apply it on purpose.

Both are recorded in the audit trail.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import orjson

from core import broker
from core import request as request_info
from core.errors import BadRequest
from core.event import peek
from domain.archive import ArchiveRow
from domain.outcome import Outcome
from ops.actions import ActionResult, Progress, Selection, audit_details
from store import Store
from worker.dead_letters import FAILURE_HEADERS, REPLAYED_HEADER


def summary(row: Any) -> dict[str, Any]:
    """One line's worth of a dead letter (a list row or a full row)."""
    return {
        "id": row["message_id"],
        "type": row["type"],
        "order_id": row["order_id"],
        "kind": row["kind"],
        "reason": row["reason"],
        "attempts": row["attempts"],
        "first_failed_at": _iso(row["first_failed_at"]),
        "last_failed_at": _iso(row["last_failed_at"]),
        "source_queue": row["source_queue"],
        "dead_at": _iso(row["dead_at"]),
    }


def full_view(row: Any) -> dict[str, Any]:
    """One dead letter whole: its summary, status, every header and the body."""
    try:
        body: Any = orjson.loads(row["body"])
    except orjson.JSONDecodeError:
        body = bytes(row["body"]).decode("utf-8", "replace")
    return {
        **summary(row),
        "status": row["status"],
        "settled_at": _iso(row["settled_at"]),
        "settled_by": row["settled_by"],
        "settle_reason": row["settle_reason"],
        "exchange": row["exchange"],
        "routing_key": row["routing_key"],
        "headers": readable_headers(orjson.loads(row["headers"])),
        "body": body,
    }


def readable_headers(headers: Any) -> Any:
    """The headers, the webhook's `request` (JSON text on the wire) as the object it holds."""
    if isinstance(headers, dict) and isinstance(headers.get(request_info.HEADER), str):
        parsed = request_info.from_header(headers[request_info.HEADER])
        if parsed is not None:
            return {**headers, request_info.HEADER: parsed}
    return headers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


WHAT = "dead letters"
FILTERS = ("type", "kind", "order")  # what selects dead letters besides ids and all


async def list_letters(store: Store, selection: Selection | None = None) -> list[dict[str, Any]]:
    """Open dead letters, oldest first; with a selection, only those of its filters or ids."""
    if selection is None or selection.everything:
        rows = await store.dead_letters.find()
    else:
        rows = await store.dead_letters.find(
            event_type=selection.event_type, kind=selection.kind, order_id=selection.order_id
        )
        if selection.ids:
            rows = [r for r in rows if r["message_id"] in selection.ids]
    return [summary(r) for r in rows]


async def show(store: Store, message_id: str) -> list[dict[str, Any]]:
    """Every row of a message id (the open one, and those replayed or purged), newest first."""
    return [full_view(row) for row in await store.dead_letters.get(message_id)]


async def preview(store: Store, action: str, selection: Selection) -> ActionResult:
    """The dry run of a replay or purge: what it would take now (the same locked selection)."""
    selection.check(FILTERS)
    async with _claim(store, selection) as claim:
        return _result(action, True, selection, claim.rows)


async def replay(
    store: Store,
    publisher: broker.Publisher,
    selection: Selection,
    actor: str,
    *,
    reason: str = "",
    progress: Progress | None = None,
) -> ActionResult:
    """Publish the selected dead letters with confirms and mark them replayed, in one
    transaction with the audit entry; the worker's idempotency makes a repeat safe."""
    selection.check(FILTERS)
    async with _claim(store, selection) as claim:
        result = _result("replay", False, selection, claim.rows)
        for n, row in enumerate(claim.rows, 1):
            headers = {
                k: v for k, v in orjson.loads(row["headers"]).items() if k not in FAILURE_HEADERS
            }
            headers[REPLAYED_HEADER] = row["kind"]
            await publisher.publish(
                row["exchange"],
                row["routing_key"],
                bytes(row["body"]),
                message_id=row["message_id"],
                message_type=row["type"] or None,
                headers=headers,
            )
            await claim.settle(row["id"], "replayed", actor, reason or None)
            result.add_done([row["message_id"]])
            result.totals["replayed"] += 1
            if progress:
                progress(n, len(claim.rows))
        if result.done_count:
            details = audit_details(WHAT, selection, result, reason)
            result.audit_id = await claim.audit(actor, "dlq.replay", result.done_count, details)
    return result


async def purge(
    store: Store,
    selection: Selection,
    actor: str,
    *,
    reason: str,
    progress: Progress | None = None,
) -> ActionResult:
    """Mark the selected dead letters purged, each leaving a tombstone in the archive; needs a
    reason (kept with each row, its tombstone and the audit entry)."""
    if not reason.strip():
        raise BadRequest("a purge needs a reason (it is kept in the audit trail)")
    selection.check(FILTERS)
    async with _claim(store, selection) as claim:
        result = _result("purge", False, selection, claim.rows)
        for n, row in enumerate(claim.rows, 1):
            tomb = tombstone(row)
            if tomb is not None:
                await claim.tombstone(tomb, f"purged by {actor}: {reason}")
            await claim.settle(row["id"], "purged", actor, reason)
            result.add_done([row["message_id"]])
            result.totals["purged"] += 1
            if progress:
                progress(n, len(claim.rows))
        if result.done_count:
            details = audit_details(WHAT, selection, result, reason)
            result.audit_id = await claim.audit(actor, "dlq.purge", result.done_count, details)
    return result


def _result(action: str, dry_run: bool, selection: Selection, rows: list[Any]) -> ActionResult:
    result = ActionResult(action, dry_run)
    for row in rows:
        result.add_matched(summary(row))
    result.not_found = selection.not_found([r["message_id"] for r in rows])
    return result


def tombstone(row: Any) -> ArchiveRow | None:
    """The archive row a purged event leaves, under the event's bounded key (core.event), with
    the webhook's request when its headers kept it; None for what is not a Conekta event."""
    body = bytes(row["body"])
    seen = peek(body)
    if seen.type is None or seen.livemode is None or seen.created_at is None:
        return None
    headers = orjson.loads(row["headers"]) if row["headers"] else {}
    request = headers.get(request_info.HEADER) if isinstance(headers, dict) else None
    return ArchiveRow(
        event_id=seen.key,
        type=seen.type,
        order_id=row["order_id"],
        livemode=seen.livemode,
        created_at=seen.created_at,
        received_at=None,
        outcome=Outcome.PURGED,
        body=body,
        original_id=seen.original_id,
        request=request_info.from_header(request),
    )


def _claim(store: Store, selection: Selection) -> AbstractAsyncContextManager[Any]:
    """The selected open dead letters, locked until the block ends."""
    return store.dead_letters.claim(
        selection.ids,
        selection.everything,
        selection.event_type,
        selection.kind,
        selection.order_id,
    )
