"""The unhandled consumer: events no handler consumes yet (charge.created, order.updated, ...), and
signed bodies without a well-formed type.

They land in `conekta.unhandled.v2` through the events exchange's alternate exchange. Archiving
them keeps every raw event in one place, keeps the queue from growing without end, and lets a
future handler re-apply them with `conekta-ingest events replay --type ...` (outcome `ignored`),
or a fix judge them again with `events replay --outcome invalid` (outcome `invalid`, archived
by the consumer base when `decode` raises InvalidEvent).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from core.event import judge
from core.verifier import Verifier
from domain.archive import ArchiveRow, unhandled_row
from domain.outcome import Outcome
from domain.provenance import SIGNED
from store import Store
from worker.consumer import Consumer, received_at
from worker.failures import FailureRouter


class UnhandledConsumer(Consumer[ArchiveRow]):
    def __init__(
        self,
        store: Store,
        failures: FailureRouter,
        *,
        batch_size: int,
        batch_wait: float,
        verifier: Verifier,
    ) -> None:
        super().__init__(failures, batch_size=batch_size, batch_wait=batch_wait, verifier=verifier)
        self._store = store

    def decode(self, message: AbstractIncomingMessage, seen: dict[str, Any] | None) -> ArchiveRow:
        """The base verified its DIGEST: a replay of it later may apply it."""
        body = message.body
        row = unhandled_row(judge(body), body, received_at(message), seen)
        return replace(row, provenance=SIGNED)

    async def apply(self, items: list[ArchiveRow]) -> list[Outcome]:
        await self._store.events.archive(items)
        return [row.outcome for row in items]

    async def archive_invalid(self, rows: list[ArchiveRow]) -> None:
        await self._store.events.archive(rows)
