"""Publish fulfillment messages written by committed batches, then mark them sent.

Rows are claimed with FOR UPDATE SKIP LOCKED, so several workers relay without publishing the
same row twice. A crash after the confirm but before the mark publishes that row again later
(same message id: subscribers deduplicate); a crash before the confirm loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from ingest import topology
from ingest.broker import Publisher, PublishFailed
from worker import db, metrics

log = structlog.get_logger(__name__)

CLAIM_LIMIT = 500


class OutboxRelay:
    def __init__(self, pool: db.Pool, publisher: Publisher, interval: float) -> None:
        self._pool = pool
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
            except (db.DatabaseError, PublishFailed) as exc:
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
        async with db.transaction(self._pool) as connection:
            rows = await db.fetch(connection, "claim_outbox", CLAIM_LIMIT)
            if not rows:
                metrics.OUTBOX_BACKLOG.set(0)
                return 0
            results = await asyncio.gather(
                *(self._publish(row) for row in rows), return_exceptions=True
            )
            sent = [row["id"] for row, result in zip(rows, results, strict=True) if result is None]
            await db.execute(connection, "mark_outbox_sent", sent)
            failed = [r for r in results if isinstance(r, BaseException)]
            backlog = await connection.fetchval(db.QUERIES["outbox_backlog"])
        metrics.OUTBOX_PUBLISHED.inc(len(sent))
        metrics.OUTBOX_BACKLOG.set(backlog)
        if failed:
            raise PublishFailed(f"{len(failed)} fulfillment message(s) not confirmed: {failed[0]}")
        return len(sent)

    async def _publish(self, row: db.Record) -> None:
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
