"""The consumer base: micro-batches in, every message settled only after its work committed.

A concrete consumer only decodes a message and applies a batch (in one transaction). This class
owns the rest of a message's trip: batching, holding a batch while the database is unreachable,
archiving what Conekta did not sign (`unverified`: its DIGEST is checked again here, see
worker.provenance) and what is not a usable event (`invalid`, decode raised InvalidEvent), one
`multiple` ack per committed batch, a failed batch applied again one event at a time (so one
poison event cannot hold back the rest), failures routed to retry or dead letter, the settle log
line and metrics, and nack-for-redelivery of whatever was not processed when asked to stop.

No exception from one message stops the loop: only an unreachable database (held in place) or
broker (the failure router cannot publish: the message is left for redelivery) pauses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, Self, TypeVar

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from core import backoff, lifecycle
from core import request as request_info
from core.errors import (
    DatabaseUnavailable,
    InvalidEvent,
    StopRequested,
    TransientDatabaseError,
    UndecidableEvent,
)
from core.verifier import Verifier
from domain.archive import ArchiveRow
from domain.outcome import Outcome
from worker import metrics
from worker.judge import invalid_row
from worker.provenance import unverified_row

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Quick in-place retries of a batch that hit a deadlock or serialization failure.
IN_PLACE_ATTEMPTS = 3
# Seconds to pause when a failed message cannot even be routed to retry or dead letter.
FAILURE_PAUSE = 1.0


class Decoded(Protocol):
    """What the settle log line names."""

    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def order_id(self) -> str | None: ...


Item = TypeVar("Item", bound=Decoded)


class Failures(Protocol):
    """Where a message goes when it fails (worker.failures.FailureRouter: retry or dead letter)."""

    async def failed(self, message: AbstractIncomingMessage, exc: BaseException) -> None: ...


@dataclass
class _Prepared(Generic[Item]):
    """A batch verified and decoded, not yet applied."""

    decoded: list[tuple[AbstractIncomingMessage, Item]] = field(default_factory=list)
    invalid: list[tuple[AbstractIncomingMessage, ArchiveRow]] = field(default_factory=list)
    failed: list[tuple[AbstractIncomingMessage, Exception]] = field(default_factory=list)


class Consumer(ABC, Generic[Item]):
    def __init__(
        self,
        failures: Failures,
        *,
        batch_size: int,
        batch_wait: float,
        verifier: Verifier | None = None,
    ) -> None:
        """`verifier`: check each body's DIGEST before decoding it (consumers of webhooks)."""
        self._failures = failures
        self._verifier = verifier
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._stop = asyncio.Event()
        self.database_ok = True
        self._in_flight: asyncio.Future[None] | None = None

    def fresh(self) -> Self:
        """Another consumer like this one, with its own inbox: for a second queue."""
        twin = copy.copy(self)
        twin._inbox = asyncio.Queue()
        twin.database_ok = True
        twin._in_flight = None
        return twin

    # -- what a concrete consumer says ----------------------------------------------------------

    @abstractmethod
    def decode(self, message: AbstractIncomingMessage, seen: dict[str, Any] | None) -> Item:
        """The message's content; `seen` is its webhook request as read once (`request`).
        InvalidEvent archives it as `invalid`; any other error sends it to retry or dead letter
        (core.errors)."""

    @abstractmethod
    async def apply(self, items: list[Item]) -> Sequence[str | Exception]:
        """Do the batch's work in one transaction; the outcome of each item, in order (an
        archive `Outcome` for events), or the error that failed that item alone (it goes to
        retry or dead letter once the rest committed)."""

    async def archive_invalid(self, rows: list[ArchiveRow]) -> None:
        """Store bodies that are not usable events (decode raised InvalidEvent) or whose DIGEST
        failed (`unverified`), in one transaction. A consumer that can meet them says where."""
        raise NotImplementedError(f"{type(self).__name__} cannot archive invalid events")

    def committed(self, items: Sequence[Item], outcomes: Sequence[str]) -> None:
        """Called after a batch committed, before it is acknowledged."""

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, queue: AbstractQueue, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in flight is finished and settled.

        One consumer per channel: the `multiple` ack relies on it. The next batch is collected,
        verified and decoded while the previous one commits (CPU here, waiting on the database
        there; a 20,000-event drain ran 3,275 events/s against 3,117, median of 3). Batches are
        still applied and settled one at a time, in delivery order, each planned against what
        the one before committed.
        """
        self._stop = stop
        tag = await queue.consume(self._inbox.put)
        log.info("consuming", queue=queue.name)
        try:
            while not stop.is_set():
                batch = await self._next_batch(stop)
                prepared = self._prepare(batch) if batch else None
                await self._settled()
                if prepared is not None:
                    # Held on self: a cancelled run leaves it settling, and a task only weakly
                    # referenced by the loop may be collected.
                    self._in_flight = asyncio.ensure_future(self._finish(prepared))
            await self._settled()
        finally:
            with contextlib.suppress(Exception):  # a closed channel has no consumer to cancel
                await queue.cancel(tag)
            while not self._inbox.empty():
                await _settle(self._inbox.get_nowait().nack(requeue=True))

    async def _settled(self) -> None:
        """Wait for the batch in flight, if any. Shielded: commit-then-settle must not be cut in
        half by a cancellation."""
        if self._in_flight is not None:
            await asyncio.shield(self._in_flight)
            self._in_flight = None

    async def handle(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        """Decode, apply, settle one batch."""
        await self._finish(self._prepare(messages))

    def _prepare(self, messages: Sequence[AbstractIncomingMessage]) -> _Prepared[Item]:
        """Verify and decode a batch: what to apply, what to archive unapplied (not signed, not a
        usable event), and what fails whatever is tried (to retry or dead letter)."""
        prepared: _Prepared[Item] = _Prepared()
        for message in messages:
            seen = request(message)  # read once: the DIGEST check and the archive share it
            verifier = self._verifier
            if verifier is not None and (reason := verifier.reason(message.body, seen)):
                row = unverified_row(message.body, received_at(message), reason, seen)
                prepared.invalid.append((message, row))
                continue
            try:
                prepared.decoded.append((message, self.decode(message, seen)))
            except InvalidEvent as exc:
                row = invalid_row(message.body, received_at(message), str(exc), seen)
                prepared.invalid.append((message, row))
            except Exception as exc:  # the same body fails the same way: permanent
                prepared.failed.append((message, UndecidableEvent.of(exc)))
        return prepared

    async def _finish(self, prepared: _Prepared[Item]) -> None:
        """Route what failed, archive what is not applied, apply the rest and settle it."""
        for message, error in prepared.failed:
            await self._fail(message, error)
        if prepared.invalid:
            await self._archive_invalid(prepared.invalid)
        decoded = prepared.decoded
        if not decoded:
            return
        try:
            await self._commit(decoded)
        except StopRequested:
            log.warning("stopping while the database is unreachable; batch left for redelivery")
            for message, _ in decoded:
                await _settle(message.nack(requeue=True))
        except Exception as exc:
            log.warning("batch failed, applying one by one", size=len(decoded), error=repr(exc))
            for pair in decoded:
                await self._commit_one(pair)

    async def _commit_one(self, pair: tuple[AbstractIncomingMessage, Item]) -> None:
        try:
            await self._commit([pair])
        except StopRequested:
            await _settle(pair[0].nack(requeue=True))
        except Exception as exc:
            await self._fail(pair[0], exc)

    async def _archive_invalid(
        self, invalid: Sequence[tuple[AbstractIncomingMessage, ArchiveRow]]
    ) -> None:
        """Keep bodies that are not usable events or not signed, with the reason, then ack each
        alone (the batch's `multiple` ack must not cover messages committed later). If they
        cannot be archived together, each is tried alone."""
        try:
            await self.with_database(lambda: self.archive_invalid([row for _, row in invalid]))
        except StopRequested:
            for message, _ in invalid:
                await _settle(message.nack(requeue=True))
            return
        except Exception as exc:
            if len(invalid) == 1:
                await self._fail(invalid[0][0], exc)
                return
            for pair in invalid:
                await self._archive_invalid([pair])
            return
        for message, row in invalid:
            await _settle(message.ack())
            metrics.EVENTS.labels(row.outcome).inc()
            if row.outcome is Outcome.UNVERIFIED:
                log.warning(
                    "event settled",
                    event_id=row.original_id,
                    event_type=row.type,
                    outcome=row.outcome,
                    reason=row.reason,
                )
                continue
            # The field path only: the reason can quote a value from the body.
            log.warning(
                "event settled",
                event_id=row.event_id,
                event_type=row.type,
                outcome=row.outcome,
                field=(row.reason or "").split(":", 1)[0],
            )

    async def _fail(self, message: AbstractIncomingMessage, exc: BaseException) -> None:
        """Retry or dead-letter; when even that cannot be published (the broker is in trouble),
        leave the message for redelivery and pause a moment rather than stop."""
        try:
            await self._failures.failed(message, exc)
        except Exception as error:
            log.error(
                "could not route a failed message; left for redelivery",
                event_id=message.message_id,
                error=repr(error),
            )
            await _settle(message.nack(requeue=True))
            await asyncio.sleep(FAILURE_PAUSE)

    async def _commit(self, decoded: Sequence[tuple[AbstractIncomingMessage, Item]]) -> None:
        items = [item for _, item in decoded]
        started = time.perf_counter()
        results = await self.with_database(lambda: self.apply(items))
        done = [(m, i, r) for (m, i), r in zip(decoded, results, strict=True) if isinstance(r, str)]
        self.committed([item for _, item, _ in done], [outcome for _, _, outcome in done])
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(items))
        # The failed first (each copied to retry or dead letter, then acked alone), then one
        # `multiple` ack for the rest: it cannot cover a failed one that is not copied yet.
        for (message, _), result in zip(decoded, results, strict=True):
            if isinstance(result, Exception):
                await self._fail(message, result)
        await _ack_all([message for message, _, _ in done])
        for _, item, outcome in done:
            metrics.EVENTS.labels(outcome).inc()
            log.info(
                "event settled",
                event_id=item.event_id,
                event_type=item.type,
                order_id=item.order_id,
                outcome=outcome,
            )

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

    # -- the database ---------------------------------------------------------------------------

    async def with_database(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a database operation, retrying in place: forever while the database is
        unreachable (raising StopRequested once asked to stop), a few times on deadlocks and
        serialization failures."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await operation()
            except DatabaseUnavailable as exc:
                self._set_database_ok(False, str(exc))
                if self._stop.is_set():
                    raise StopRequested from exc
                await asyncio.sleep(backoff.delay(attempt, base=0.5, cap=5.0))
                continue
            except TransientDatabaseError:
                if attempt >= IN_PLACE_ATTEMPTS:
                    raise
                await asyncio.sleep(backoff.delay(attempt, base=0.01, cap=0.1))
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


def received_at(message: AbstractIncomingMessage) -> datetime | None:
    """The receiver's `received_at` header (None when missing or not a time)."""
    value = message.headers.get("received_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def request(message: AbstractIncomingMessage) -> dict[str, Any] | None:
    """The receiver's `request` header: peer address and headers (core.request), the same
    rules applied again; None when missing or malformed (reconcile, older receivers)."""
    return request_info.from_header(message.headers.get(request_info.HEADER))


async def _settle(settling: Awaitable[object]) -> None:
    """Ack or nack; a channel lost after the commit is harmless (redelivery is deduplicated),
    and so is the CancelledError aiormq fails the futures of a dead connection with."""
    try:
        await settling
    except asyncio.CancelledError as exc:
        if lifecycle.cancelled_here():
            raise
        log.warning("could not settle message; the broker will redeliver it", error=repr(exc))
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
        tag = message.delivery_tag or 0
        if key not in highest or tag > (highest[key].delivery_tag or 0):
            highest[key] = message
    for message in highest.values():
        await _settle(message.ack(multiple=True))
