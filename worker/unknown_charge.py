"""`unknown_charge` asks instead of waiting: a refund naming a charge that is not booked carries
its order's id, so with CONEKTA_API_KEY set the worker fetches that order from Conekta's API and
applies what Conekta says (provenance `api`), then the refund again, at once. When Conekta does not
know the order either, the refund is dead-lettered with that reason (UnknownToConekta). A
chargeback names no order: it keeps waiting in the retry tiers, visible as `unknown_charge`.
Anything else (the API away, a key of the other mode, an order that cannot be booked) leaves the
event to its retry, as before.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

import structlog

from core.errors import ConektaIngestError, UnknownCharge, UnknownToConekta
from domain.checkout import event_from_order
from domain.order_event import parse_order_event
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Incoming
from domain.provenance import API
from store import Store
from worker.conekta_api import ConektaApi

log = structlog.get_logger(__name__)


class AskConekta:
    def __init__(
        self, store: Store, api_url: str, api_key: str, modes: Collection[bool] = ALL_MODES
    ) -> None:
        self._store = store
        self._url = api_url
        self._key = api_key
        self._modes = modes

    async def decide(self, item: Incoming, error: UnknownCharge) -> Outcome | Exception:
        """The refund's outcome once Conekta's order is booked, or why it still cannot apply."""
        order_id = item.event.order_id
        if order_id is None or item.event.chargeback is not None:
            return error  # a chargeback names no order: it waits for its payment
        try:
            async with ConektaApi.open(self._url, self._key) as api:
                order = await api.order(order_id)
        except ConektaIngestError as exc:  # API away or key refused: wait as before
            log.warning("could not ask Conekta for an order", order_id=order_id, error=str(exc))
            return error
        if order is None:
            return UnknownToConekta(
                f"{error}; Conekta does not know order {order_id} either (GET /orders: 404)"
            )
        mode = order.get("livemode")
        if isinstance(mode, bool) and mode is not item.event.livemode:
            return error  # the key is of the other mode: this one cannot be asked
        try:
            body = event_from_order(order)
            fetched = Incoming(parse_order_event(body), body, datetime.now(UTC), provenance=API)
        except ConektaIngestError as exc:
            log.warning("Conekta's order cannot be booked", order_id=order_id, error=str(exc))
            return error
        applied = await self._store.apply.batch([fetched, item], modes=self._modes, isolate=True)
        log.info("booked Conekta's order for a refund of an unknown charge", order_id=order_id)
        return applied.failed.get(1) or applied.outcomes[-1]
