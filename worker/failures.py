"""Where a message goes when it cannot be applied: a delayed retry, or the dead-letter queue.

Three kinds of failure, told apart by the error's class (core.errors):
- transient (a deadlock, a lost connection, an unexpected error): retried after a capped, jittered
  delay through retry queues, so other messages keep flowing; after `max_attempts`, dead-lettered;
- permanent (`PermanentError`: an event the ledger cannot apply): dead-lettered at once;
- database unreachable: not here at all; the consumer holds its batch until Postgres is back.

The copy is published with confirms before the original is acked: nothing is lost in between.
"""

from __future__ import annotations

import asyncio
import random
import traceback
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage

from core import backoff, topology
from core.broker import Publisher
from core.errors import UnknownCharge, is_permanent
from store.in_flight import InFlight
from worker import metrics

log = structlog.get_logger(__name__)

# Headers a failed message carries.
ATTEMPTS = "x-attempts"
ERROR_KIND = "x-error-kind"
ERROR_MESSAGE = "x-error-message"
ERROR_TRACEBACK = "x-error-traceback"
FIRST_FAILED_AT = "x-first-failed-at"
LAST_FAILED_AT = "x-last-failed-at"
ORIGINAL_ROUTING_KEY = "x-original-routing-key"
ORIGINAL_QUEUE = "x-original-queue"
RECORD_TIMEOUT = 5.0  # seconds: recording a failure must not hold the routing of its copy


class FailureKind(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    UNKNOWN_CHARGE = "unknown_charge"  # transient, named so on-call sees why it waited


def kind_of(error: BaseException) -> FailureKind:
    if isinstance(error, UnknownCharge):
        return FailureKind.UNKNOWN_CHARGE
    return FailureKind.PERMANENT if is_permanent(error) else FailureKind.TRANSIENT


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def traceback_summary(error: BaseException, frames: int = 6, limit: int = 1500) -> str:
    """Where it was raised, innermost frame last (file:line in function): enough to find the
    bug, never the locals (they could hold a body)."""
    stack = traceback.extract_tb(error.__traceback__)[-frames:]
    lines = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in stack]
    return " > ".join(lines)[-limit:]


def retry_delay_ms(attempt: int, rng: random.Random | None = None) -> int:
    """Jittered delay for the n-th retry: between half and all of its tier's delay."""
    return int(backoff.jittered(topology.RETRY_DELAYS_MS[topology.retry_tier(attempt)], rng))


def failure_headers(
    message_headers: dict[str, Any],
    routing_key: str,
    queue: str,
    kind: str,
    error: str,
    where: str = "",
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    headers = {k: v for k, v in message_headers.items() if k != "x-death"}
    headers[ATTEMPTS] = int(headers.get(ATTEMPTS, 0)) + 1
    headers.setdefault(FIRST_FAILED_AT, now)
    headers[LAST_FAILED_AT] = now
    headers[ERROR_KIND] = kind
    headers[ERROR_MESSAGE] = error[:1000]
    headers[ERROR_TRACEBACK] = where
    headers.setdefault(ORIGINAL_ROUTING_KEY, routing_key)
    headers.setdefault(ORIGINAL_QUEUE, queue)
    return headers


class FailureRouter:
    def __init__(
        self,
        publisher: Publisher,
        queue: str,
        max_attempts: int,
        in_flight: InFlight | None = None,
    ) -> None:
        """`in_flight`: where each failure is recorded before its copy is published, so the
        event stays in sight (`events show`) while it waits for a retry or the dead letters."""
        self._publisher = publisher
        self._queue = queue
        self._max_attempts = max_attempts
        self._in_flight = in_flight

    async def failed(self, message: AbstractIncomingMessage, exc: BaseException) -> None:
        """Route a failed message to a retry queue or the DLQ by the error's kind, then ack it."""
        kind, error = kind_of(exc), describe(exc)
        headers = failure_headers(
            dict(message.headers),
            message.routing_key or message.type or "",
            self._queue,
            kind.value,
            error,
            traceback_summary(exc),
        )
        attempts = headers[ATTEMPTS]
        bound = log.bind(
            event_id=message.message_id,
            event_type=message.type,
            attempt=attempts,
            error_kind=kind,
            error=error,
        )
        if kind is FailureKind.PERMANENT or attempts >= self._max_attempts:
            await self._record(message, headers, "dead_letters", topology.DEAD_LETTER_QUEUE)
            await self._publish(
                message, headers, topology.DEAD_LETTER_EXCHANGE, topology.DEAD_LETTER_KEY
            )
            metrics.DEAD_LETTERS.labels(kind).inc()
            bound.error("event dead-lettered")
        else:
            delay = retry_delay_ms(attempts)
            queue = topology.retry_queue_name(self._queue, topology.retry_tier(attempts))
            due = datetime.now(UTC) + timedelta(milliseconds=delay)
            await self._record(message, headers, "retry", queue, due)
            await self._publish(
                message, headers, topology.RETRY_EXCHANGE, queue, expiration=delay / 1000
            )
            metrics.RETRIES.labels(kind).inc()
            bound.warning("event will be retried", delay_ms=delay)
        await message.ack()

    async def _record(
        self,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        sent_to: str,
        queue: str,
        due: datetime | None = None,
    ) -> None:
        """Best effort: with the database away the copy still goes (the failure is in its
        headers, and the event shows again once the database is back and it is decided)."""
        if self._in_flight is None:
            return
        try:
            async with asyncio.timeout(RECORD_TIMEOUT):
                await self._in_flight.record(
                    event_id=message.message_id or "",
                    type=message.type,
                    attempt=headers[ATTEMPTS],
                    error_kind=headers[ERROR_KIND],
                    error=headers[ERROR_MESSAGE],
                    sent_to=sent_to,
                    queue=queue,
                    next_attempt_at=due,
                    first_failed_at=datetime.fromisoformat(headers[FIRST_FAILED_AT]),
                )
        except Exception as exc:
            log.warning(
                "could not record the failure", event_id=message.message_id, error=repr(exc)
            )

    async def _publish(
        self,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        exchange: str,
        routing_key: str,
        expiration: float | None = None,
    ) -> None:
        await self._publisher.publish(
            exchange,
            routing_key,
            message.body,
            message_id=message.message_id or "",
            message_type=message.type,
            headers=headers,
            expiration=expiration,
        )
