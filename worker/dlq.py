"""The dead-letter queue for on-call: list, show, replay and purge, without broker tooling.

Reading is done with basic.get and no ack; messages not replayed or purged go back to the queue
when the channel closes. Replay publishes with confirms before it acks the dead letter.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage

from core import broker, topology
from worker import failures

FAILURE_HEADERS = (
    failures.ATTEMPTS,
    failures.ERROR_KIND,
    failures.ERROR_MESSAGE,
    failures.ERROR_TRACEBACK,
    failures.FIRST_FAILED_AT,
    failures.LAST_FAILED_AT,
    failures.ORIGINAL_ROUTING_KEY,
    failures.ORIGINAL_QUEUE,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
)


@dataclass(frozen=True)
class DeadLetter:
    id: str
    type: str
    order_id: str | None
    kind: str
    reason: str
    attempts: int
    first_failed_at: str | None
    last_failed_at: str | None
    routing_key: str

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = dict(message.headers)
    if failures.ERROR_KIND in headers:
        kind = str(headers[failures.ERROR_KIND])
        reason = str(headers.get(failures.ERROR_MESSAGE, ""))
    else:  # dead-lettered by the broker itself: the delivery limit (a crash loop)
        kind = str(headers.get("x-first-death-reason", "unknown"))
        reason = "redelivered past the delivery limit without being settled (worker crash loop?)"
    return DeadLetter(
        id=message.message_id or "",
        type=message.type or "",
        order_id=_order_id(message.body),
        kind=kind,
        reason=reason,
        attempts=int(str(headers.get(failures.ATTEMPTS, 0))),
        first_failed_at=_text(headers.get(failures.FIRST_FAILED_AT)),
        last_failed_at=_text(headers.get(failures.LAST_FAILED_AT)),
        routing_key=str(headers.get(failures.ORIGINAL_ROUTING_KEY) or message.type or ""),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _order_id(body: bytes) -> str | None:
    try:
        order_id = orjson.loads(body)["data"]["object"]["id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return order_id if isinstance(order_id, str) else None


def full_view(message: AbstractIncomingMessage) -> dict[str, Any]:
    """One dead letter whole: its summary, every header and the body."""
    try:
        body: Any = orjson.loads(message.body)
    except orjson.JSONDecodeError:
        body = message.body.decode("utf-8", "replace")
    headers = {
        k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
        for k, v in dict(message.headers).items()
    }
    return {**describe(message).summary(), "headers": headers, "body": body}


class DeadLetters:
    """Every message now in the DLQ, held unacked until the block ends."""

    def __init__(
        self, messages: list[AbstractIncomingMessage], publisher: broker.Publisher
    ) -> None:
        self.messages = messages
        self._publisher = publisher

    def select(self, predicate: Callable[[DeadLetter], bool]) -> list[AbstractIncomingMessage]:
        return [m for m in self.messages if predicate(describe(m))]

    async def replay(self, message: AbstractIncomingMessage) -> None:
        """Back into processing with fresh attempts; the worker's idempotency makes it safe."""
        letter = describe(message)
        headers = {k: v for k, v in dict(message.headers).items() if k not in FAILURE_HEADERS}
        headers["x-replayed-from-dlq"] = letter.kind
        await self._publisher.publish(
            topology.EVENTS_EXCHANGE,
            letter.routing_key,
            message.body,
            message_id=letter.id,
            message_type=letter.type,
            headers=headers,
        )
        await message.ack()

    async def purge(self, message: AbstractIncomingMessage) -> None:
        await message.ack()


@contextlib.asynccontextmanager
async def open_dead_letters(
    amqp_url: str, queue: str = topology.ORDERS_DLQ, publish_timeout: float = 10.0
) -> AsyncIterator[DeadLetters]:
    connection = await broker.connect(amqp_url, "conekta-ingest dlq", attempts=3)
    publish_connection = await broker.connect(amqp_url, "conekta-ingest dlq publish", attempts=3)
    publisher = broker.Publisher(publish_connection, publish_timeout)
    try:
        channel = await connection.channel()
        dlq = await channel.get_queue(queue, ensure=False)
        messages = []
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            messages.append(message)
        yield DeadLetters(messages, publisher)
    finally:
        await publisher.close()
        await connection.close()  # what was not acked returns to the queue


def matcher(
    ids: Iterable[str] = (), event_type: str | None = None, everything: bool = False
) -> Callable[[DeadLetter], bool]:
    wanted = set(ids)

    def match(letter: DeadLetter) -> bool:
        return (
            everything
            or letter.id in wanted
            or (event_type is not None and letter.type == event_type)
        )

    return match
