"""The dead-letter consumer: moves every message of `conekta.dead-letters` (failed events, with
their headers and reason; messages the broker dead-lettered past a delivery limit or a length
bound) into the Postgres table `dead_letters`, and acks it only after the commit. On-call reads
and acts on that table (ops/dead_letters.py): browsing is a SELECT, never a delivery attempt
that a queue's limit would count.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aio_pika.abc import AbstractIncomingMessage

from core import topology
from store import Store
from worker import failures, metrics
from worker.consumer import Consumer

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
    """One dead letter as the table stores it (store/queries/dead_letters.sql)."""

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

    def decode(
        self, message: AbstractIncomingMessage, seen: dict[str, Any] | None
    ) -> DeadLetterRow:
        return row_from_message(message)

    async def apply(self, items: list[DeadLetterRow]) -> list[str]:
        await self._store.dead_letters.insert(items)
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
