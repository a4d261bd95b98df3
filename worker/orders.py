"""The order events consumer (orders, refunds, chargebacks): decode, apply a batch through the
store."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage

from core.errors import UnknownCharge
from core.event import judge
from core.verifier import Verifier
from domain.archive import ArchiveRow
from domain.order_event import order_event_from
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Incoming
from domain.provenance import SIGNED
from store import Store
from store.apply import Applied
from worker import metrics
from worker.consumer import Consumer, received_at
from worker.failures import FailureRouter
from worker.unknown_charge import AskConekta

log = structlog.get_logger(__name__)


class OrderConsumer(Consumer[Incoming]):
    def __init__(
        self,
        store: Store,
        failures: FailureRouter,
        *,
        batch_size: int,
        batch_wait: float,
        verifier: Verifier,
        on_commit: Callable[[], None] = lambda: None,
        modes: Collection[bool] = ALL_MODES,
        ask: AskConekta | None = None,
    ) -> None:
        """`ask`: Conekta's API, for refunds of a charge not booked (worker/unknown_charge.py)."""
        super().__init__(failures, batch_size=batch_size, batch_wait=batch_wait, verifier=verifier)
        self._store = store
        self._modes = modes
        self._on_commit = on_commit
        self._ask = ask

    def decode(self, message: AbstractIncomingMessage, seen: dict[str, Any] | None) -> Incoming:
        # The base verified its DIGEST (else it is archived `unverified`). judge: InvalidEvent
        # archives it `invalid`; what passes but cannot be applied is UnapplicableEvent (dead
        # letter).
        document = judge(message.body)
        return Incoming(
            order_event_from(document),
            message.body,
            received_at(message),
            seen,
            provenance=SIGNED,
        )

    async def apply(self, items: list[Incoming]) -> list[Outcome | Exception]:
        applied = await self._store.apply.batch(items, modes=self._modes, isolate=True)
        decided = iter(report(applied))
        results: list[Outcome | Exception] = [
            applied.failed.get(i) or next(decided) for i in range(len(items))
        ]
        for i, result in enumerate(results):
            if isinstance(result, UnknownCharge) and self._ask is not None:
                results[i] = await self._ask.decide(items[i], result)
        return results

    async def archive_invalid(self, rows: list[ArchiveRow]) -> None:
        await self._store.events.archive(rows)

    def committed(self, items: Sequence[Incoming], outcomes: Sequence[str]) -> None:
        self._on_commit()
        now = datetime.now(UTC)
        for item in items:
            metrics.APPLY_LATENCY.observe((now - item.event.created_at).total_seconds())


def report(applied: Applied) -> list[Outcome]:
    """The batch's outcomes; each payment contradicted by the domain's decision (an unpaid
    order's ending met a payment: archived `stale`) counted and logged for reconciliation, and
    so are orders paid above their amount and lists that said has_more."""
    for event in applied.contradictions:
        metrics.CONTRADICTIONS.inc()
        log.warning(
            "contradiction: an unpaid order's ending met a payment",
            event_id=event.event_id,
            event_type=event.type,
            order_id=event.order_id,
        )
    for event in applied.overpaid:
        metrics.OVERPAID_ORDERS.inc()
        log.warning(
            "paid charges above the order amount: applied, ledger verify warns",
            event_id=event.event_id,
            order_id=event.order_id,
            paid=event.paid_total,
            amount=event.amount,
        )
    for flag in applied.flags:
        metrics.RECONCILE_FLAGS.inc()
        log.warning(
            "a list said has_more: what it carried is applied, the order flagged for reconcile",
            event_id=flag.event_id,
            order_id=flag.order_id,
            reason=flag.reason,
        )
    return applied.outcomes
