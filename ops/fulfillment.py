"""Fulfillment subscribers, for on-call: each configured subscriber's queue as the broker sees it,
and a replay of outbox messages to ONE subscriber's queue (the backend of `conekta-ingest
fulfillment` and of the console's Fulfillment page and API).

A replay publishes through the default exchange straight to the queue (routing key = its name),
so no other subscriber sees anything; each message keeps its message_id (subscribers deduplicate
on it) and carries its original routing key in the header x-conekta-routing-key (subscribers
dispatch on the body's event_type). Publishes are mandatory and confirmed: a missing queue stops
the replay with an error, never a silent drop. Only messages already published are replayed:
unsent ones are on their way to every subscriber anyway.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractConnection

from core import topology
from core.broker import Publisher
from core.database import Record
from core.errors import BadRequest
from ops import audit
from store import Store
from store.outbox import ReplayFilter
from worker.outbox import by_order

PAGE = 500
AUDIT_ACTION = "fulfillment.replay"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Selection:
    """Which published messages go to which subscriber's queue."""

    queue: str
    since: datetime | None = None  # when the message was written (its change applied)
    until: datetime | None = None
    event_type: str | None = None
    order_id: str | None = None

    def check(self, subscribers: Sequence[str]) -> None:
        """Only a configured subscriber's queue (CONEKTA_FULFILLMENT_SUBSCRIBERS), sane filters."""
        queues = sorted(topology.subscriber_queue(n) for n in subscribers)
        if self.queue not in queues:
            listed = ", ".join(queues) or "none: set CONEKTA_FULFILLMENT_SUBSCRIBERS"
            raise BadRequest(
                f"{self.queue!r} is not a configured subscriber's queue (configured: {listed})"
            )
        if self.since and self.until and self.since >= self.until:
            raise BadRequest("since must be before until")
        if self.event_type is not None and self.event_type not in topology.ORDER_EVENT_TYPES:
            raise BadRequest(f"unknown event type {self.event_type!r}")

    @property
    def filter(self) -> ReplayFilter:
        return ReplayFilter(self.since, self.until, self.event_type, self.order_id)

    def target(self) -> str:
        """The audit trail's line: the queue and the filters given."""
        filters = {
            "since": self.since,
            "until": self.until,
            "type": self.event_type,
            "order": self.order_id,
        }
        return f"queue={self.queue} " + (audit.target("messages", (), False, filters) or "all")


@dataclass
class Result:
    queue: str
    dry_run: bool
    matched: int
    published: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    audit_id: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "dry_run": self.dry_run,
            "matched": self.matched,
            "published": self.published,
            "done_count": self.published,
            "by_type": dict(sorted(self.by_type.items())),
            "audit_id": self.audit_id,
        }


async def preview(store: Store, selection: Selection, subscribers: Sequence[str]) -> Result:
    """What a replay would send (a dry run): the count per type; nothing is published."""
    selection.check(subscribers)
    by_type = Counter(await store.outbox.replay_counts(selection.filter))
    return Result(selection.queue, True, sum(by_type.values()), by_type=by_type)


async def replay(
    store: Store,
    publisher: Publisher,
    connection: AbstractConnection,
    selection: Selection,
    subscribers: Sequence[str],
    actor: str,
    *,
    reason: str = "",
    progress: Progress | None = None,
) -> Result:
    """Publish each selected message to the queue, oldest first. Audited with the count that went
    out, also when a publish fails part way (those messages are at the subscriber)."""
    counted = await preview(store, selection, subscribers)
    if await topology.probe_queue(connection, selection.queue) is None:
        raise BadRequest(
            f"queue {selection.queue} does not exist: start the subscriber (it declares its "
            "queue), then replay"
        )
    result = Result(selection.queue, False, counted.matched)
    error = ""
    try:
        after = 0
        while rows := await store.outbox.replay_page(selection.filter, after, PAGE):
            # As the relay: each order's messages one after the other, orders concurrently
            # (confirms in flight together: one at a time measured 235 messages/s).
            chains = by_order(rows).values()
            failed = await asyncio.gather(
                *(
                    _publish_in_order(publisher, selection.queue, c, result, progress)
                    for c in chains
                )
            )
            if errors := [e for e in failed if e is not None]:
                raise errors[0]
            after = rows[-1]["id"]
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        details = {"target": selection.target(), "queue": selection.queue}
        details |= {"reason": reason} if reason else {}
        details |= {"error": error} if error else {}
        result.audit_id = await audit.record(store, actor, AUDIT_ACTION, result.published, details)
    return result


async def _publish_in_order(
    publisher: Publisher, queue: str, rows: list[Record], result: Result, progress: Progress | None
) -> Exception | None:
    """One order's messages in the order of its changes; stops at its first failure."""
    for row in rows:
        try:
            await _publish(publisher, queue, row)
        except Exception as exc:
            return exc
        result.published += 1
        result.by_type[row["routing_key"]] += 1
        if progress:
            progress(result.published, max(result.matched, result.published))
    return None


async def _publish(publisher: Publisher, queue: str, row: Record) -> None:
    await publisher.publish(
        "",  # the default exchange: this one queue, by name
        queue,
        row["body"],
        message_id=row["message_id"],
        message_type=row["routing_key"],
        headers={topology.ROUTING_KEY_HEADER: row["routing_key"]},
    )


async def subscribers(connection: AbstractConnection, names: Sequence[str]) -> list[dict[str, Any]]:
    """Each configured subscriber's queue: ready messages, consumers, its dead letters (passive
    declares: the management API is not assumed)."""
    return [state.as_dict() for state in await topology.subscriber_states(connection, names)]
