"""What on-call looks at, shared by the console's pages, its API and the CLI: events found by any
key, one event with everything that came of it, orders, the ledger as of a date, the overview.

Every function returns plain JSON-ready values (ISO times, integer cents). Lists are pages in a
stable order with an opaque cursor for the next page (keyset, not OFFSET: page 1,000 costs what
page 1 does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from domain import periods
from domain.fulfillment import message_id
from domain.ledger import chargeback_key
from ops import events, in_flight, ledger
from ops.paging import decode_cursor, jsonable, page_of, page_size
from store import Store


@dataclass(frozen=True)
class EventFilter:
    event_id: str | None = None
    order_id: str | None = None
    customer: str | None = None  # a customer id, e-mail or name any event of the order carried
    event_type: str | None = None
    outcome: str | None = None
    since: datetime | None = None  # Conekta's created_at >= since
    until: datetime | None = None  # Conekta's created_at < until


def parse_time(value: str, tz: ZoneInfo | None = None) -> datetime:
    """ISO 8601 or unix seconds; a bare date, or a time without an offset, in `tz` (the
    ledger's zone; UTC when None): domain.periods.parse_time."""
    return periods.parse_time(value, tz)


async def search_events(
    store: Store, selection: EventFilter, cursor: str | None = None, limit: int = 50
) -> dict[str, Any]:
    after: tuple[Any, ...] = (None, None)
    if cursor:
        after = decode_cursor(cursor, datetime, str)
    rows = await store.events.search(
        event_id=selection.event_id,
        order_id=selection.order_id,
        customer=selection.customer,
        event_type=selection.event_type,
        outcome=selection.outcome,
        since=selection.since,
        until=selection.until,
        after_created_at=after[0],
        after_event_id=after[1],
        limit=page_size(limit) + 1,
    )
    return page_of(rows, limit, lambda row: (row["created_at"], row["event_id"]))


async def event_detail(store: Store, event_id: str) -> dict[str, Any] | None:
    """One archived event whole, with its order, the order's timeline, postings and messages;
    else where the worker has it (retrying, a dead letter…: ops/in_flight.py); None: not seen."""
    event = await events.show(store, event_id)
    if event is None:
        return await in_flight.locate(store, event_id)
    meanings = {r["name"]: r["description"] for r in await store.stats.outcome_descriptions()}
    event["outcome_meaning"] = meanings.get(event["outcome"], "")
    order_id = event.get("order_id")
    found = await order_detail(store, order_id, event["livemode"]) if order_id else None
    event["order"] = found
    return event


async def order_detail(
    store: Store, order_id: str, livemode: bool | None = None
) -> dict[str, Any] | None:
    """The order (of that mode; None: the live one if there is one, else the test one), its
    events (the timeline), ledger postings and fulfillment messages."""
    order = await ledger.order(store, order_id, livemode)
    if order is None:
        return None
    postings = [
        {**jsonable(p), "entries": orjson.loads(p["entries"])}
        for p in await store.orders.postings(order_id, order["livemode"])
    ]
    order["postings"] = postings
    order["refunds"] = [p for p in postings if p["kind"] == "refund"]
    # The chargebacks table (id, status, amount, charge) with the postings each one made:
    # business keys chargeback:<id>:opened|won|lost (kinds chargeback_opened/won/lost).
    order["chargebacks"] = [
        {**c, "postings": [p for p in postings if p["business_key"].startswith(_of(c["id"]))]}
        for c in order["chargebacks"]
    ]
    ids = [message_id(order_id, e["event_id"]) for e in order["events"]]
    order["messages"] = [jsonable(m) for m in await store.outbox.messages(ids)]
    return order


def _of(chargeback_id: str) -> str:
    return chargeback_key(chargeback_id, "")


async def search_orders(
    store: Store,
    *,
    status: str | None = None,
    customer: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    after: tuple[Any, ...] = (None, None)
    if cursor:
        after = decode_cursor(cursor, datetime, str)
    rows = await store.orders.search(
        status=status,
        customer=customer,
        after_updated_at=after[0],
        after_id=after[1],
        limit=page_size(limit) + 1,
    )
    return page_of(rows, limit, lambda row: (row["updated_at"], row["id"]))


async def overview(store: Store, queues: Mapping[str, int | None], now: datetime) -> dict[str, Any]:
    """The first page: the last 24 h per outcome, queue depths (None: unknown), the outbox
    backlog, the open dead letters (the table), and the last successful reconcile with
    Conekta's API (None: never)."""
    counts = {
        r["outcome"]: r["events"] for r in await store.stats.outcome_counts(now - timedelta(1))
    }
    last = await store.reconcile.last_run()
    return {
        "since": (now - timedelta(1)).isoformat(),
        "outcomes_24h": counts,
        "queues": dict(queues),
        "outbox_backlog": await store.outbox.backlog(),
        "dead_letters_open": await store.dead_letters.count(),
        "in_flight": await in_flight.by_reason(store),
        "last_reconcile": None
        if last is None
        else {**jsonable(last), "counts": orjson.loads(last["counts"])},
    }
