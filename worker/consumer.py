"""Consume order events in micro-batches: decode, apply in one transaction, then settle.

Settling (ack, or route to retry/DLQ) happens only after the batch committed. A batch that fails
for a reason other than an unreachable database is applied again one event at a time, so one
poison event cannot hold back the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage

from worker import db, metrics
from worker.apply import apply_batch
from worker.batching import Batcher, StopWhileUnavailable, ack_all, settle
from worker.failures import PERMANENT, TRANSIENT, FailureRouter
from worker.order_event import UnapplicableEvent, parse_order_event
from worker.plan import Incoming

log = structlog.get_logger(__name__)


class OrderConsumer(Batcher):
    def __init__(
        self,
        pool: db.Pool,
        failures: FailureRouter,
        *,
        batch_size: int,
        batch_wait: float,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(pool, batch_size=batch_size, batch_wait=batch_wait)
        self._failures = failures
        self._on_commit = on_commit

    async def handle(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        decoded: list[tuple[AbstractIncomingMessage, Incoming]] = []
        for message in messages:
            try:
                decoded.append((message, _decode(message)))
            except UnapplicableEvent as exc:
                await self._failures.failed(message, PERMANENT, str(exc))
        if not decoded:
            return
        try:
            await self._apply([item for _, item in decoded], [m for m, _ in decoded])
        except StopWhileUnavailable:
            log.warning("stopping while the database is unreachable; batch left for redelivery")
            for message, _ in decoded:
                await settle(message.nack(requeue=True))
        except Exception as exc:
            log.warning("batch failed, applying one by one", size=len(decoded), error=repr(exc))
            for message, item in decoded:
                await self._apply_one(message, item)

    async def _apply_one(self, message: AbstractIncomingMessage, item: Incoming) -> None:
        try:
            await self._apply([item], [message])
        except StopWhileUnavailable:
            await settle(message.nack(requeue=True))
        except Exception as exc:
            kind = PERMANENT if _is_permanent(exc) else TRANSIENT
            await self._failures.failed(message, kind, f"{type(exc).__name__}: {exc}")

    async def _apply(self, items: list[Incoming], messages: list[AbstractIncomingMessage]) -> None:
        started = time.perf_counter()
        outcomes = await self.with_database(lambda: apply_batch(self._pool, items))
        self._on_commit()
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(items))
        await ack_all(messages)
        now = datetime.now(UTC)
        for item, outcome in zip(items, outcomes, strict=True):
            metrics.EVENTS.labels(outcome).inc()
            metrics.APPLY_LATENCY.observe((now - item.event.created_at).total_seconds())
            log.info(
                "event settled",
                event_id=item.event.event_id,
                event_type=item.event.type,
                order_id=item.event.order_id,
                outcome=outcome,
            )


def _decode(message: AbstractIncomingMessage) -> Incoming:
    event = parse_order_event(message.body)
    return Incoming(event=event, body=message.body, received_at=received_at(message))


def received_at(message: AbstractIncomingMessage) -> datetime | None:
    """The receiver's `received_at` header."""
    value = message.headers.get("received_at")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _is_permanent(exc: BaseException) -> bool:
    """Errors the database raises on data it will never accept (a violated CHECK, say)."""
    return isinstance(exc, UnapplicableEvent | db.DataRejected)
