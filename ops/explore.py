"""What on-call looks at, shared by the console's pages, its API and the CLI: events found by any
key, one event with everything that came of it, orders, the ledger as of a date, the overview.

Every function returns plain JSON-ready values (ISO times, integer cents). Lists are pages in a
stable order with an opaque cursor for the next page (keyset, not OFFSET: page 1,000 costs what
page 1 does).
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.database import Record
from core.errors import BadRequest
from domain.fulfillment import message_id
from ops import events, ledger
from store import Store

MAX_PAGE = 200
CSV_PAGE = 2000


@dataclass(frozen=True)
class EventFilter:
    event_id: str | None = None
    order_id: str | None = None
    customer: str | None = None  # a Conekta customer id or an e-mail
    event_type: str | None = None
    outcome: str | None = None
    since: datetime | None = None  # Conekta's created_at >= since
    until: datetime | None = None  # Conekta's created_at < until


@dataclass(frozen=True)
class EntryFilter:
    account: str | None = None
    currency: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def parse_time(value: str) -> datetime:
    """ISO 8601 (UTC when no zone is given) or unix seconds."""
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):  # "²" is a digit; 10**20 s is past any year
        raise BadRequest(f"not a time: {value!r} (ISO 8601 or unix seconds)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def encode_cursor(*key: object) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The key a cursor holds, typed; BadRequest when it was not made by encode_cursor."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        return tuple(
            datetime.fromisoformat(v) if t is datetime else t(v)
            for v, t in zip(values, types, strict=True)
        )
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadRequest("not a cursor from a previous page") from None


def page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
    return limit


def jsonable(row: Record | Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in dict(row).items()}


def page_of(
    rows: Sequence[Any],
    limit: int,
    key: Callable[[Any], tuple[object, ...]],
    item: Callable[[Any], dict[str, Any]] = jsonable,
) -> dict[str, Any]:
    """A page of `limit` items from rows fetched with one extra (the sign of a next page); the
    next cursor is the key of its last item."""
    shown = rows[:limit]  # limit >= 1 (page_size)
    return {
        "items": [item(row) for row in shown],
        "next": encode_cursor(*key(shown[-1])) if len(rows) > limit else None,
    }


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
    """One archived event whole, with its order, the order's timeline, postings and messages."""
    event = await events.show(store, event_id)
    if event is None:
        return None
    meanings = {r["name"]: r["description"] for r in await store.stats.outcome_descriptions()}
    event["outcome_meaning"] = meanings.get(event["outcome"], "")
    order_id = event.get("order_id")
    event["order"] = await order_detail(store, order_id) if order_id else None
    return event


async def order_detail(store: Store, order_id: str) -> dict[str, Any] | None:
    """The order, its events (the timeline), ledger postings and fulfillment messages."""
    order = await ledger.order(store, order_id)
    if order is None:
        return None
    postings = [
        {**jsonable(p), "entries": orjson.loads(p["entries"])}
        for p in await store.orders.postings(order_id)
    ]
    order["postings"] = postings
    order["refunds"] = [p for p in postings if p["kind"] == "refund"]
    order["chargebacks"] = [p for p in postings if p["kind"] == "chargeback"]
    ids = [message_id(order_id, e["event_id"]) for e in order["events"]]
    order["messages"] = [jsonable(m) for m in await store.outbox.messages(ids)]
    return order


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


async def balances(store: Store, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """Per mode (live/test), currency and account, in cents, signed to each account's normal
    side, as of a time (money that moved by then; None: now). The CLI's `ledger balances`
    reads the same query."""
    return [
        {
            "mode": "live" if r["livemode"] else "test",
            "account": r["account"],
            "currency": r["currency"],
            "balance": r["balance"],
        }
        for r in await store.ledger.balances(at=as_of, livemode=None)
    ]


async def entries(
    store: Store, selection: EntryFilter, cursor: str | None = None, limit: int = 100
) -> dict[str, Any]:
    after_id = decode_cursor(cursor, int)[0] if cursor else 0
    rows = await _entries(store, selection, after_id, page_size(limit) + 1)
    return page_of(rows, limit, lambda row: (row["id"],), item=dict)


ENTRY_COLUMNS = (
    "id",
    "effective_at",
    "recorded_at",
    "mode",
    "business_key",
    "kind",
    "order_id",
    "charge_id",
    "event_id",
    "account",
    "currency",
    "amount",
)


async def entries_csv(store: Store, selection: EntryFilter) -> AsyncIterator[str]:
    """Every matching entry as CSV (header first), read and yielded a page at a time."""
    yield _csv_lines([ENTRY_COLUMNS])
    after_id = 0
    while rows := await _entries(store, selection, after_id, CSV_PAGE):
        yield _csv_lines([[_cell(row[c]) for c in ENTRY_COLUMNS] for row in rows])
        after_id = rows[-1]["id"]


def _csv_lines(rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _cell(value: object) -> object:
    """A text starting like a formula is defused for spreadsheets (CSV injection)."""
    if isinstance(value, str) and value[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + value
    return value


async def _entries(
    store: Store, selection: EntryFilter, after_id: int, limit: int
) -> list[dict[str, Any]]:
    rows = await store.ledger.entries_page(
        account=selection.account,
        currency=selection.currency,
        since=selection.since,
        until=selection.until,
        after_id=after_id,
        limit=limit,
    )
    result = []
    for r in rows:
        row = jsonable(r)
        row["mode"] = "live" if row.pop("livemode") else "test"
        result.append(row)
    return result


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
        "last_reconcile": None
        if last is None
        else {**jsonable(last), "counts": orjson.loads(last["counts"])},
    }
