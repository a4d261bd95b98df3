"""Consume a queue in micro-batches and settle each batch only after its work committed.

The shared part of the worker's consumers: batching, holding a batch while the database is
unreachable, acknowledging a committed batch with one `multiple` ack, and leaving what was not
processed to be redelivered on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from worker import db, metrics

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Quick in-place retries of a batch that hit a deadlock or serialization failure.
IN_PLACE_ATTEMPTS = 3


class StopWhileUnavailable(Exception):
    """Asked to stop while the database is unreachable: leave the batch to be redelivered."""


class Batcher(ABC):
    def __init__(self, pool: db.Pool, *, batch_size: int, batch_wait: float) -> None:
        self._pool = pool
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.database_ok = True

    @abstractmethod
    async def handle(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        """Do the batch's work and settle every message of it."""

    async def run(self, queue: AbstractQueue, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in flight is finished and settled.

        One consumer per channel: `ack_all` relies on it.
        """
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
            await settle(self._inbox.get_nowait().nack(requeue=True))

    async def with_database(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a database operation, retrying in place: forever while the database is
        unreachable (raising StopWhileUnavailable once asked to stop), a few times on deadlocks
        and serialization failures."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await operation()
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
            return result

    def _set_database_ok(self, ok: bool, error: str = "") -> None:
        if ok != self.database_ok:
            if ok:
                log.info("database reachable again")
            else:
                log.error("database unreachable: holding the batch until it is back", error=error)
        self.database_ok = ok
        metrics.DATABASE_DOWN.set(0 if ok else 1)


async def settle(settling: Awaitable[object]) -> None:
    """Ack or nack; a channel lost after the commit is harmless (redelivery is deduplicated)."""
    try:
        await settling
    except Exception as exc:
        log.warning("could not settle message; the broker will redeliver it", error=repr(exc))


async def ack_all(messages: Sequence[AbstractIncomingMessage]) -> None:
    """One `multiple` ack per channel for a committed batch.

    Safe because batches are handled one at a time in delivery order and every message before
    them was settled already: acking the highest tag acks exactly this batch.
    """
    highest: dict[int, AbstractIncomingMessage] = {}
    for message in messages:
        key = id(message.channel)
        tag = message.delivery_tag or 0
        if key not in highest or tag > (highest[key].delivery_tag or 0):
            highest[key] = message
    for message in highest.values():
        await settle(message.ack(multiple=True))
