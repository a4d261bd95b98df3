"""Publish fulfillment messages written by committed batches, then mark them sent.

Rows are claimed with FOR UPDATE SKIP LOCKED, so several workers relay without publishing the
same row twice. A crash after the confirm but before the mark publishes that row again later
(same message id: subscribers deduplicate); a crash before the confirm loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from core import topology
from core.broker import Publisher
from core.database import Record
from core.errors import ConektaIngestError, PublishFailed
from worker import metrics
from worker.store import Store

log = structlog.get_logger(__name__)

CLAIM_LIMIT = 500


class OutboxRelay:
    def __init__(self, store: Store, publisher: Publisher, interval: float) -> None:
        self._store = store
        self._publisher = publisher
        self._interval = interval
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was committed: publish it now rather than at the next interval."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                sent = await self.flush_once()
            except ConektaIngestError as exc:
                log.warning("outbox relay failed, will retry", error=str(exc))
                sent = 0
            if sent < CLAIM_LIMIT:
                await _wait_any(self._wake, stop, self._interval)

    async def flush(self) -> int:
        """Publish everything pending; returns how many were sent."""
        total = 0
        while sent := await self.flush_once():
            total += sent
        return total

    async def flush_once(self) -> int:
        async with self._store.claim_outbox(CLAIM_LIMIT) as claim:
            if not claim.rows:
                metrics.OUTBOX_BACKLOG.set(0)
                return 0
            results = await asyncio.gather(
                *(self._publish(row) for row in claim.rows), return_exceptions=True
            )
            sent = [
                r["id"] for r, result in zip(claim.rows, results, strict=True) if result is None
            ]
            await claim.mark_sent(sent)
            failed = [r for r in results if isinstance(r, BaseException)]
            backlog = await claim.backlog()
        metrics.OUTBOX_PUBLISHED.inc(len(sent))
        metrics.OUTBOX_BACKLOG.set(backlog)
        if failed:
            raise PublishFailed(f"{len(failed)} fulfillment message(s) not confirmed: {failed[0]}")
        return len(sent)

    async def _publish(self, row: Record) -> None:
        await self._publisher.publish(
            topology.FULFILLMENT_EXCHANGE,
            row["routing_key"],
            row["body"],
            message_id=row["message_id"],
            message_type=row["routing_key"],
        )


async def _wait_any(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    waiters = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    with contextlib.suppress(TimeoutError):
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
