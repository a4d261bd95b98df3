"""The order events consumer (orders, refunds, chargebacks): decode, apply a batch through the
store."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

from aio_pika.abc import AbstractIncomingMessage

from core.event import judge
from domain.archive import ArchiveRow
from domain.order_event import order_event_from
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Incoming
from worker import metrics
from worker.consumer import Consumer, received_at, request
from worker.failures import FailureRouter
from worker.store import Store


class OrderConsumer(Consumer[Incoming]):
    def __init__(
        self,
        store: Store,
        failures: FailureRouter,
        *,
        batch_size: int,
        batch_wait: float,
        on_commit: Callable[[], None] = lambda: None,
        modes: Collection[bool] = ALL_MODES,
    ) -> None:
        super().__init__(failures, batch_size=batch_size, batch_wait=batch_wait)
        self._store = store
        self._modes = modes
        self._on_commit = on_commit

    def decode(self, message: AbstractIncomingMessage) -> Incoming:
        # judge: InvalidEvent archives it `invalid`; what passes but cannot be applied is
        # UnapplicableEvent (dead letter).
        document = judge(message.body)
        return Incoming(
            order_event_from(document), message.body, received_at(message), request(message)
        )

    async def apply(self, items: list[Incoming]) -> list[Outcome]:
        return await self._store.apply_batch(items, modes=self._modes)

    async def archive_invalid(self, rows: list[ArchiveRow]) -> None:
        await self._store.archive(rows)

    def committed(self, items: Sequence[Incoming], outcomes: Sequence[str]) -> None:
        self._on_commit()
        now = datetime.now(UTC)
        for item in items:
            metrics.APPLY_LATENCY.observe((now - item.event.created_at).total_seconds())
