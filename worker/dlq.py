"""The dead-letter queue for on-call: list, show, replay and purge, without broker tooling.

Reading is done with basic.get and no ack; messages not replayed or purged go back to the queue
when the channel closes. Replay publishes with confirms before it acks the dead letter.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage

from core import broker, topology
from core.errors import BadRequest
from worker import audit, failures
from worker.store import Store

FAILURE_HEADERS = (
    failures.ATTEMPTS,
    failures.ERROR_KIND,
    failures.ERROR_MESSAGE,
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


@dataclass(frozen=True)
class Selection:
    """Which dead letters: these ids, every one, or all matching every filter given."""

    ids: tuple[str, ...] = ()
    event_type: str | None = None
    kind: str | None = None
    order_id: str | None = None
    everything: bool = False

    def check(self) -> None:
        filters = any((self.event_type, self.kind, self.order_id))
        if sum((bool(self.ids), self.everything, filters)) != 1:
            raise BadRequest("say which: ids, all, or filters (type, kind, order)")

    def matches(self, letter: DeadLetter) -> bool:
        if self.everything:
            return True
        if self.ids:
            return letter.id in self.ids
        return (
            (self.event_type is None or letter.type == self.event_type)
            and (self.kind is None or letter.kind == self.kind)
            and (self.order_id is None or letter.order_id == self.order_id)
        )


@dataclass
class ActionResult:
    action: str  # replay | purge
    dry_run: bool
    matched: list[dict[str, Any]]  # what the action is (or would be) applied to
    done: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    audit_id: int | None = None

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


Progress = Callable[[int, int], None]


async def list_letters(amqp_url: str, selection: Selection | None = None) -> list[dict[str, Any]]:
    async with open_dead_letters(amqp_url) as letters:
        return [
            describe(m).summary()
            for m in letters.messages
            if selection is None or selection.matches(describe(m))
        ]


async def show_letter(amqp_url: str, letter_id: str) -> dict[str, Any] | None:
    async with open_dead_letters(amqp_url) as letters:
        found = letters.select(Selection(ids=(letter_id,)).matches)
        return full_view(found[0]) if found else None


async def replay(
    amqp_url: str,
    store: Store,
    selection: Selection,
    actor: str,
    *,
    dry_run: bool = False,
    reason: str = "",
    progress: Progress | None = None,
) -> ActionResult:
    """Put the selected dead letters back into processing (fresh attempts); audited."""
    return await _act(amqp_url, store, "replay", selection, actor, dry_run, reason, progress)


async def purge(
    amqp_url: str,
    store: Store,
    selection: Selection,
    actor: str,
    *,
    reason: str,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ActionResult:
    """Delete the selected dead letters for good; needs a reason; audited."""
    if not dry_run and not reason.strip():
        raise BadRequest("a purge needs a reason (it is kept in the audit trail)")
    return await _act(amqp_url, store, "purge", selection, actor, dry_run, reason, progress)


async def _act(
    amqp_url: str,
    store: Store,
    action: str,
    selection: Selection,
    actor: str,
    dry_run: bool,
    reason: str,
    progress: Progress | None,
) -> ActionResult:
    selection.check()
    async with open_dead_letters(amqp_url) as letters:
        selected = letters.select(selection.matches)
        result = ActionResult(action, dry_run, [describe(m).summary() for m in selected])
        result.not_found = sorted(set(selection.ids) - {m.message_id for m in selected})
        if dry_run:
            return result
        for n, message in enumerate(selected, 1):
            await (letters.replay(message) if action == "replay" else letters.purge(message))
            result.done.append(message.message_id or "")
            if progress:
                progress(n, len(selected))
    if result.done:
        result.audit_id = await audit.record(
            store,
            actor,
            f"dlq.{action}",
            _describe_selection(selection),
            reason,
            count=len(result.done),
            ids=result.done[:1000],
        )
    return result


def _describe_selection(selection: Selection) -> str:
    if selection.everything:
        return "all dead letters"
    if selection.ids:
        return " ".join(selection.ids[:20]) + (" ..." if len(selection.ids) > 20 else "")
    filters = {"type": selection.event_type, "kind": selection.kind, "order": selection.order_id}
    return " ".join(f"{k}={v}" for k, v in filters.items() if v)
