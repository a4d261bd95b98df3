"""Archive events no handler consumes yet (charge.*, order.expired, …) and acknowledge them.

They land in `conekta.unhandled` through the events exchange's alternate exchange. Archiving
them (outcome `ignored`) keeps every raw event in one place, keeps the queue from growing without
end, and lets a future handler re-apply them with `conekta-ingest events replay --type …`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import structlog
from aio_pika.abc import AbstractIncomingMessage

from worker import db, metrics
from worker.apply import write_archive
from worker.batching import Batcher, StopWhileUnavailable, ack_all, settle
from worker.consumer import received_at
from worker.failures import PERMANENT, FailureRouter
from worker.plan import ArchiveRow

log = structlog.get_logger(__name__)


def decode(message: AbstractIncomingMessage) -> ArchiveRow:
    document = orjson.loads(message.body)
    resource = (document.get("data") or {}).get("object") or {}
    order_id = resource.get("id") if resource.get("object") == "order" else resource.get("order_id")
    return ArchiveRow(
        event_id=document["id"],
        type=document["type"],
        order_id=order_id if isinstance(order_id, str) else None,
        livemode=bool(document["livemode"]),
        created_at=datetime.fromtimestamp(document["created_at"], UTC),
        received_at=received_at(message),
        outcome="ignored",
        body=message.body,
    )


class ArchiveConsumer(Batcher):
    def __init__(
        self, pool: db.Pool, failures: FailureRouter, *, batch_size: int, batch_wait: float
    ) -> None:
        super().__init__(pool, batch_size=batch_size, batch_wait=batch_wait)
        self._failures = failures

    async def handle(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        events: list[ArchiveRow] = []
        for message in messages:
            try:
                events.append(decode(message))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                await self._failures.failed(message, PERMANENT, f"cannot archive: {exc!r}")
        kept = [m for m in messages if not m.processed]
        if not events:
            return
        try:
            await self.with_database(lambda: _archive(self._pool, events))
        except StopWhileUnavailable:
            for message in kept:
                await settle(message.nack(requeue=True))
            return
        await ack_all(kept)
        metrics.EVENTS.labels("ignored").inc(len(events))
        for event in events:
            log.info(
                "event settled",
                event_id=event.event_id,
                event_type=event.type,
                order_id=event.order_id,
                outcome="ignored",
            )


async def _archive(pool: db.Pool, rows: Sequence[ArchiveRow]) -> None:
    async with db.transaction(pool) as connection:
        await write_archive(connection, rows)
