"""Publish fulfillment messages written by committed batches, then mark them sent.

Per order, messages go out in the order of its changes: one relay (of all workers) claims at a
time (an advisory lock), and within a claim each order's messages are published one after the
other (different orders concurrently); after a failure, the rest of that order waits for the
next claim. A crash after the confirm but before the mark publishes that row again later (same
message id: subscribers deduplicate); a crash before the confirm loses nothing.

Failures are not swallowed here: `run` raises, and the supervisor logs, counts and restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson

from core import topology
from core.broker import Publisher
from core.database import Record
from core.errors import ConektaIngestError, PublishFailed
from store import Store
from worker import metrics

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
            sent = await self.flush_once()
            if sent < CLAIM_LIMIT:
                await _wait_any(self._wake, stop, self._interval)

    async def flush(self) -> int:
        """Publish everything pending; returns how many were sent."""
        total = 0
        while sent := await self.flush_once():
            total += sent
        return total

    async def flush_once(self) -> int:
        async with self._store.outbox.claim(CLAIM_LIMIT) as claim:
            if not claim.rows:
                metrics.OUTBOX_BACKLOG.set(0)
                return 0
            chains = await asyncio.gather(
                *(self._publish_in_order(rows) for rows in by_order(claim.rows).values())
            )
            sent = [row_id for chain_sent, _ in chains for row_id in chain_sent]
            failed = [error for _, error in chains if error is not None]
            await claim.mark_sent(sent)
            backlog = await claim.backlog()
        metrics.OUTBOX_PUBLISHED.inc(len(sent))
        metrics.OUTBOX_BACKLOG.set(backlog)
        if failed:
            raise PublishFailed(f"{len(failed)} fulfillment message(s) not confirmed: {failed[0]}")
        return len(sent)

    async def _publish_in_order(self, rows: list[Record]) -> tuple[list[int], BaseException | None]:
        """One order's messages, one after the other; stops at the first failure."""
        sent: list[int] = []
        for row in rows:
            try:
                await self._publish(row)
            except ConektaIngestError as exc:
                return sent, exc
            sent.append(row["id"])
        return sent, None

    async def _publish(self, row: Record) -> None:
        await self._publisher.publish(
            topology.FULFILLMENT_EXCHANGE,
            row["routing_key"],
            row["body"],
            message_id=row["message_id"],
            message_type=row["routing_key"],
        )


def by_order(rows: list[Record]) -> dict[str, list[Record]]:
    """Claimed rows grouped by order, each group in claim (= change) order."""
    groups: dict[str, list[Record]] = {}
    for row in rows:
        groups.setdefault(_order_key(row), []).append(row)
    return groups


def _order_key(row: Record) -> str:
    try:
        order_id = orjson.loads(row["body"]).get("order_id")
    except orjson.JSONDecodeError:
        order_id = None
    return order_id if isinstance(order_id, str) else row["message_id"]


async def _wait_any(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    waiters = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    with contextlib.suppress(TimeoutError):
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
