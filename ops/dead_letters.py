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

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from core import broker
from core import request as request_info
from core.errors import BadRequest
from core.event import peek
from domain.archive import ArchiveRow
from domain.outcome import Outcome
from ops import audit
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
        "headers": orjson.loads(row["headers"]),
        "body": body,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class Selection:
    """Which dead letters: these ids, every one, or all matching every filter given."""

    ids: tuple[str, ...] = ()
    event_type: str | None = None
    kind: str | None = None
    order_id: str | None = None
    everything: bool = False

    def check(self) -> None:
        filters = any((self.event_type, self.kind, self.order_id))
        if sum((bool(self.ids), self.everything, filters)) != 1:
            raise BadRequest("say which: ids, all, or filters (type, kind, order)")

    def describe(self) -> str:
        """For the audit trail's `target`: what was asked for, in a line."""
        filters = {"type": self.event_type, "kind": self.kind, "order": self.order_id}
        return audit.target("dead letters", self.ids, self.everything, filters)


@dataclass
class ActionResult:
    action: str  # replay | purge
    dry_run: bool
    matched: list[dict[str, Any]]  # what the action is (or would be) applied to
    done: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    audit_id: int | None = None

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


Progress = Callable[[int, int], None]


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
    selection.check()
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
    selection.check()
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
            result.done.append(row["message_id"])
            if progress:
                progress(n, len(claim.rows))
        if result.done:
            result.audit_id = await claim.audit(
                actor, "dlq.replay", len(result.done), _details(selection, result, reason)
            )
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
    selection.check()
    async with _claim(store, selection) as claim:
        result = _result("purge", False, selection, claim.rows)
        for n, row in enumerate(claim.rows, 1):
            tomb = tombstone(row)
            if tomb is not None:
                await claim.tombstone(tomb, f"purged by {actor}: {reason}")
            await claim.settle(row["id"], "purged", actor, reason)
            result.done.append(row["message_id"])
            if progress:
                progress(n, len(claim.rows))
        if result.done:
            result.audit_id = await claim.audit(
                actor, "dlq.purge", len(result.done), _details(selection, result, reason)
            )
    return result


def _result(action: str, dry_run: bool, selection: Selection, rows: list[Any]) -> ActionResult:
    result = ActionResult(action, dry_run, [summary(r) for r in rows])
    result.not_found = sorted(set(selection.ids) - {r["message_id"] for r in rows})
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


def _details(selection: Selection, result: ActionResult, reason: str) -> dict[str, Any]:
    return {
        "target": selection.describe(),
        "reason": reason,
        "selection": {
            "ids": list(selection.ids[:1000]),
            "type": selection.event_type,
            "kind": selection.kind,
            "order_id": selection.order_id,
            "all": selection.everything,
        },
        "ids": result.done[:1000],
    }


def _claim(store: Store, selection: Selection) -> AbstractAsyncContextManager[Any]:
    """The selected open dead letters, locked until the block ends."""
    return store.dead_letters.claim(
        selection.ids,
        selection.everything,
        selection.event_type,
        selection.kind,
        selection.order_id,
    )
