"""Dead letters that looking cannot lose.

The worker moves every message of `conekta.dead-letters` (failed events, with their headers and
reason; messages the broker dead-lettered past a delivery limit or a length bound) into the
Postgres table `dead_letters`, and acks it only after the commit. On-call then reads and acts on
that table: browsing is a SELECT, never a delivery attempt that a queue's limit would count.

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

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aio_pika.abc import AbstractIncomingMessage

from core import broker, topology
from core import request as request_info
from core.errors import BadRequest
from core.event import peek
from domain.archive import ArchiveRow
from domain.outcome import Outcome
from worker import audit, failures, metrics
from worker.consumer import Consumer
from worker.store import Store

log = structlog.get_logger(__name__)

STORED = "dead_letter"  # the settle outcome of a dead letter moved into the table

# Headers of a failure: not carried into a replay (it starts with fresh attempts).
FAILURE_HEADERS = (
    failures.ATTEMPTS,
    failures.ERROR_KIND,
    failures.ERROR_MESSAGE,
    failures.ERROR_TRACEBACK,
    failures.FIRST_FAILED_AT,
    failures.LAST_FAILED_AT,
    failures.ORIGINAL_ROUTING_KEY,
    failures.ORIGINAL_QUEUE,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)
REPLAYED_HEADER = "x-replayed-from-dlq"


@dataclass(frozen=True)
class DeadLetterRow:
    """One dead letter as the table stores it (worker/queries/dead_letters.sql)."""

    message_id: str
    type: str
    order_id: str | None
    kind: str
    reason: str
    attempts: int
    first_failed_at: datetime | None
    last_failed_at: datetime | None
    source_queue: str
    exchange: str
    routing_key: str
    headers: str  # JSON
    body: bytes

    @property
    def event_id(self) -> str:  # what the consumer's settle line names
        return self.message_id


def row_from_message(message: AbstractIncomingMessage) -> DeadLetterRow:
    headers = dict(message.headers)
    death = _first_death(headers)
    if failures.ERROR_KIND in headers:  # failed in the worker: it says why
        kind = str(headers[failures.ERROR_KIND])
        reason = str(headers.get(failures.ERROR_MESSAGE, ""))
        source = str(headers.get(failures.ORIGINAL_QUEUE, ""))
        exchange = topology.EVENTS_EXCHANGE
        routing_key = str(headers.get(failures.ORIGINAL_ROUTING_KEY) or message.type or "")
    else:  # dead-lettered by the broker itself
        kind = str(headers.get("x-first-death-reason") or death.get("reason") or "unknown")
        reason = _BROKER_REASONS.get(kind, f"dead-lettered by the broker ({kind})")
        source = str(headers.get("x-first-death-queue") or death.get("queue") or "")
        exchange = str(death.get("exchange") or message.exchange or topology.EVENTS_EXCHANGE)
        keys = death.get("routing-keys") or [message.routing_key or message.type or ""]
        routing_key = str(keys[0])
    now = datetime.now(UTC)
    return DeadLetterRow(
        message_id=message.message_id or f"no-message-id-{uuid.uuid4().hex}",
        type=message.type or "",
        order_id=order_id(message.body),
        kind=kind,
        reason=reason[:1000],
        attempts=int(str(headers.get(failures.ATTEMPTS, 0))),
        first_failed_at=_time(headers.get(failures.FIRST_FAILED_AT)) or now,
        last_failed_at=_time(headers.get(failures.LAST_FAILED_AT)) or now,
        source_queue=source or "?",
        exchange=exchange,
        routing_key=routing_key,
        headers=orjson.dumps(headers, default=str).decode(),
        body=message.body,
    )


_BROKER_REASONS = {
    "delivery_limit": "redelivered past the delivery limit without being settled (crash loop?)",
    "maxlen": "dropped from a full queue (its length bound)",
    "expired": "expired in its queue",
    "rejected": "rejected without requeue",
}


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict):
        return deaths[-1]  # x-death is newest first; the last one is the first death
    return {}


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def order_id(body: bytes) -> str | None:
    try:
        document = orjson.loads(body)
        resource = document["data"]["object"] if "data" in document else document
        found = resource.get("order_id") or resource.get("id")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    return found if isinstance(found, str) and found.startswith("ord_") else None


class DeadLetterConsumer(Consumer[DeadLetterRow]):
    """Moves dead letters from the queue into the table; acked only after the commit."""

    def __init__(self, store: Store, *, batch_size: int, batch_wait: float) -> None:
        super().__init__(Requeue(), batch_size=batch_size, batch_wait=batch_wait)
        self._store = store

    def decode(self, message: AbstractIncomingMessage) -> DeadLetterRow:
        return row_from_message(message)

    async def apply(self, items: list[DeadLetterRow]) -> list[str]:
        await self._store.insert_dead_letters(items)
        return [STORED] * len(items)

    def committed(self, items: Sequence[DeadLetterRow], outcomes: Sequence[str]) -> None:
        metrics.DEAD_LETTERS_STORED.inc(len(items))


class Requeue:
    """A dead letter that cannot be stored goes back to its queue: the queue's delivery limit
    then parks it (conekta.dead-letters.parked), never drops it."""

    async def failed(self, message: AbstractIncomingMessage, exc: BaseException) -> None:
        log.error(
            "dead letter not stored, returned to its queue",
            event_id=message.message_id,
            error=f"{type(exc).__name__}: {exc}",
        )
        await message.nack(requeue=True)


# -- on-call actions (the CLI, the console and the admin API call these) -----------------------


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
        rows = await store.dead_letters()
    else:
        rows = await store.dead_letters(
            event_type=selection.event_type, kind=selection.kind, order_id=selection.order_id
        )
        if selection.ids:
            rows = [r for r in rows if r["message_id"] in selection.ids]
    return [summary(r) for r in rows]


async def show(store: Store, message_id: str) -> list[dict[str, Any]]:
    """Every row of a message id (the open one, and those replayed or purged), newest first."""
    return [full_view(row) for row in await store.dead_letter(message_id)]


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
    return store.settle_dead_letters(
        selection.ids,
        selection.everything,
        selection.event_type,
        selection.kind,
        selection.order_id,
    )
