"""Consume order events in micro-batches: decode, apply in one transaction, then settle.

Settling (ack, or route to retry/DLQ) happens only after the batch committed. A batch that fails
for a reason other than an unreachable database is applied again one event at a time, so one
poison event cannot hold back the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from worker import db, metrics
from worker.apply import apply_batch
from worker.failures import PERMANENT, TRANSIENT, FailureRouter
from worker.order_event import UnapplicableEvent, parse_order_event
from worker.plan import Incoming

log = structlog.get_logger(__name__)

# Quick in-place retries of a batch that hit a deadlock or serialization failure.
IN_PLACE_ATTEMPTS = 3


class BatchConsumer:
    def __init__(
        self,
        pool: db.Pool,
        failures: FailureRouter,
        *,
        batch_size: int,
        batch_wait: float,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._on_commit = on_commit
        self._failures = failures
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.database_ok = True

    async def run(self, queue: AbstractQueue, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in flight is finished and settled."""
        self._stop = stop
        tag = await queue.consume(self._inbox.put)
        log.info("consuming", queue=queue.name)
        try:
            while not stop.is_set():
                batch = await self._next_batch(stop)
                if batch:
                    # Shielded: commit-then-settle must not be cut in half by a cancellation.
                    await asyncio.shield(self.handle(batch))
        finally:
            with contextlib.suppress(Exception):  # a closed channel has no consumer to cancel
                await queue.cancel(tag)
            await self._requeue_unprocessed()

    async def _next_batch(self, stop: asyncio.Event) -> list[AbstractIncomingMessage]:
        first = asyncio.ensure_future(self._inbox.get())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({first, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not first.done():
            first.cancel()
            return []
        batch = [first.result()]
        deadline = time.monotonic() + self._batch_wait
        while len(batch) < self._batch_size:
            if self._inbox.empty():
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._inbox.get(), timeout))
                except TimeoutError:
                    break
            else:
                batch.append(self._inbox.get_nowait())
        return batch

    async def _requeue_unprocessed(self) -> None:
        while not self._inbox.empty():
            message = self._inbox.get_nowait()
            await _settle(message.nack(requeue=True))

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
                await _settle(message.nack(requeue=True))
        except Exception as exc:
            log.warning("batch failed, applying one by one", size=len(decoded), error=repr(exc))
            for message, item in decoded:
                await self._apply_one(message, item)

    async def _apply_one(self, message: AbstractIncomingMessage, item: Incoming) -> None:
        try:
            await self._apply([item], [message])
        except StopWhileUnavailable:
            await _settle(message.nack(requeue=True))
        except Exception as exc:
            kind = PERMANENT if _is_permanent(exc) else TRANSIENT
            await self._failures.failed(message, kind, f"{type(exc).__name__}: {exc}")

    async def _apply(self, items: list[Incoming], messages: list[AbstractIncomingMessage]) -> None:
        started = time.perf_counter()
        outcomes = await self._commit(items)
        self._on_commit()
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(items))
        await _ack_all(messages)
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

    async def _commit(self, items: list[Incoming]) -> list[str]:
        """Apply, retrying in place: forever while the database is unreachable, a few times on
        deadlocks and serialization failures."""
        attempt = 0
        while True:
            attempt += 1
            try:
                outcomes = await apply_batch(self._pool, items)
            except db.DatabaseUnavailable as exc:
                self._set_database_ok(False, str(exc))
                if self._stop.is_set():
                    raise StopWhileUnavailable from exc
                await asyncio.sleep(min(0.5 * attempt, 5.0))
                continue
            except db.TransientDatabaseError:
                if attempt >= IN_PLACE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.01 * attempt)
                continue
            self._set_database_ok(True)
            return outcomes

    def _set_database_ok(self, ok: bool, error: str = "") -> None:
        if ok != self.database_ok:
            if ok:
                log.info("database reachable again")
            else:
                log.error("database unreachable: holding the batch until it is back", error=error)
        self.database_ok = ok
        metrics.DATABASE_DOWN.set(0 if ok else 1)


class StopWhileUnavailable(Exception):
    """Asked to stop while the database is unreachable: leave the batch to be redelivered."""


async def _settle(settling: Awaitable[object]) -> None:
    """Ack or nack; a channel lost after the commit is harmless (redelivery is deduplicated)."""
    try:
        await settling
    except Exception as exc:
        log.warning("could not settle message; the broker will redeliver it", error=repr(exc))


async def _ack_all(messages: Sequence[AbstractIncomingMessage]) -> None:
    """One `multiple` ack per channel for a committed batch.

    Safe because batches are handled one at a time in delivery order and every message before
    them was settled already: acking the highest tag acks exactly this batch.
    """
    highest: dict[int, AbstractIncomingMessage] = {}
    for message in messages:
        key = id(message.channel)
        if key not in highest or message.delivery_tag > highest[key].delivery_tag:  # type: ignore[operator]
            highest[key] = message
    for message in highest.values():
        await _settle(message.ack(multiple=True))


def _decode(message: AbstractIncomingMessage) -> Incoming:
    event = parse_order_event(message.body)
    received = message.headers.get("received_at")
    received_at = datetime.fromisoformat(received) if isinstance(received, str) else None
    return Incoming(event=event, body=message.body, received_at=received_at)


def _is_permanent(exc: BaseException) -> bool:
    """Errors the database raises on data it will never accept (a violated CHECK, say)."""
    return isinstance(exc, UnapplicableEvent | db.DataRejected)
