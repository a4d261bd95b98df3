"""Where an event the worker has seen is when it is not archived: on its way to a retry tier or
the dead letters (`event_failures`), an open dead letter, or replayed from the dead letters and
waiting again. And an event not seen yet: the depth of the queue it would be waiting in. So
`events show`, the console's event page and its API never call an accepted event unknown."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from core import broker, topology
from core.event import event_key
from store import Store

QUEUE_TIMEOUT = 5.0  # seconds: the depth is a hint, never worth a hanging command


async def locate(store: Store, event_id: str) -> dict[str, Any] | None:
    """The state of a seen event that is not archived (None: the worker has not seen it)."""
    key = event_key(event_id, b"")
    letters = await store.dead_letters.get(key)
    open_letter = next((row for row in letters if row["status"] == "dead"), None)
    if open_letter is not None:
        return _dead_letter(open_letter)
    failure = await store.in_flight.get(key)
    if failure is not None:
        return failure_view(failure)
    if letters:  # replayed (or purged) from the dead letters, and not archived since
        return {**_dead_letter(letters[0]), "state": letters[0]["status"]}
    return None


def failure_view(row: Any) -> dict[str, Any]:
    """An event in flight after a failure, with one line that says it all."""
    retrying = row["sent_to"] == "retry"
    due = row["next_attempt_at"]
    summary = (
        f"retrying: attempt {row['attempt']}, {row['error_kind']}: {row['error']}, next at "
        f"{_iso(due)}"
        if retrying
        else f"on its way to the dead letters: {row['error_kind']}: {row['error']}"
    )
    return {
        "state": "retrying" if retrying else "dead_lettering",
        "event_id": row["event_id"],
        "type": row["type"],
        "attempt": row["attempt"],
        "error_kind": row["error_kind"],
        "error": row["error"],
        "queue": row["queue"],
        "next_attempt_at": _iso(due),
        "first_failed_at": _iso(row["first_failed_at"]),
        "failed_at": _iso(row["failed_at"]),
        "summary": summary,
    }


async def retrying(store: Store, error_kind: str | None = None) -> list[dict[str, Any]]:
    """Every event in flight after a failure, by reason, oldest first."""
    return [failure_view(row) for row in await store.in_flight.listing(error_kind)]


async def by_reason(store: Store) -> list[dict[str, Any]]:
    """How many events wait, per reason and destination, and since when (the overview)."""
    return [{**dict(row), "oldest": _iso(row["oldest"])} for row in await store.in_flight.counts()]


async def not_seen(amqp_url: str) -> dict[str, Any]:
    """What to say of an id the worker has not seen: maybe still waiting for its first
    delivery in conekta.orders (its depth, None when the broker cannot say), maybe no event."""
    depth: int | None
    try:
        async with asyncio.timeout(QUEUE_TIMEOUT):
            connection = await broker.connect(amqp_url, "conekta-ingest events", attempts=1)
            try:
                stats = await broker.queue_stats(connection, [topology.ORDERS_QUEUE])
            finally:
                await connection.close()
        depth = stats[topology.ORDERS_QUEUE][0]
    except Exception:
        depth = None
    return not_seen_view(depth)


def not_seen_view(depth: int | None) -> dict[str, Any]:
    waiting = "an unknown number of" if depth is None else str(depth)
    return {
        "state": "not_seen",
        "queue": topology.ORDERS_QUEUE,
        "queue_depth": depth,
        "summary": f"not seen by the worker yet: {topology.ORDERS_QUEUE} holds {waiting} "
        "message(s) waiting for a first delivery (or no event has this id)",
    }


def _dead_letter(row: Any) -> dict[str, Any]:
    return {
        "state": "dead_letter",
        "event_id": row["message_id"],
        "type": row["type"],
        "order_id": row["order_id"],
        "error_kind": row["kind"],
        "error": row["reason"],
        "attempt": row["attempts"],
        "dead_at": _iso(row["dead_at"]),
        "summary": f"dead letter: {row['kind']}: {row['reason']} (dlq show for the whole)",
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
