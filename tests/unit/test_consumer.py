"""The consumer base's settle rules, without RabbitMQ or Postgres: fake messages and a fake
failure router record what would happen to each delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractIncomingMessage

from core.errors import DatabaseUnavailable, InvalidEvent, PublishFailed, UnapplicableEvent
from domain.archive import ArchiveRow
from domain.outcome import Outcome
from worker.consumer import Consumer
from worker.failures import FailureRouter


@dataclass
class FakeMessage:
    body: bytes
    delivery_tag: int
    channel: object
    settled: list[str] = field(default_factory=list)
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    type: str | None = None

    async def ack(self, multiple: bool = False) -> None:
        self.settled.append("ack-multiple" if multiple else "ack")

    async def nack(self, requeue: bool = True) -> None:
        self.settled.append("nack")


class FakeFailures:
    def __init__(self) -> None:
        self.failed_with: dict[bytes, BaseException] = {}

    async def failed(self, message: FakeMessage, exc: BaseException) -> None:
        self.failed_with[message.body] = exc
        message.settled.append("routed")


@dataclass(frozen=True)
class Item:
    event_id: str
    type: str = "order.paid"
    order_id: str | None = None


class Recorder(Consumer[Item]):
    """Bodies b"bad" do not decode; b"poison" fails any batch it is in."""

    def __init__(self, failures: FakeFailures, down: int = 0) -> None:
        super().__init__(cast(FailureRouter, failures), batch_size=10, batch_wait=0)
        self.batches: list[list[str]] = []
        self.invalid: list[ArchiveRow] = []
        self.down = down  # database unreachable for this many calls

    def decode(self, message: AbstractIncomingMessage, seen: dict[str, Any] | None) -> Item:
        if message.body == b"bad":
            raise UnapplicableEvent("cannot decode")
        if message.body.startswith(b"{"):
            raise InvalidEvent("data.object.payment_status: required")
        if message.body == b"crash":
            raise AttributeError("'str' object has no attribute 'get'")
        return Item(message.body.decode())

    async def archive_invalid(self, rows: list[ArchiveRow]) -> None:
        self.invalid.extend(rows)

    async def apply(self, items: list[Item]) -> list[Outcome]:
        if self.down:
            self.down -= 1
            raise DatabaseUnavailable("down")
        if any(item.event_id == "poison" for item in items):
            raise RuntimeError("a bug")
        self.batches.append([item.event_id for item in items])
        return [Outcome.APPLIED for _ in items]


def messages(*bodies: bytes) -> list[FakeMessage]:
    channel = object()
    return [FakeMessage(body, tag, channel) for tag, body in enumerate(bodies, 1)]


def handle(consumer: Recorder, batch: list[FakeMessage]) -> None:
    asyncio.run(consumer.handle(cast(list[AbstractIncomingMessage], batch)))


def test_a_committed_batch_is_acked_once_by_its_highest_tag() -> None:
    consumer, batch = Recorder(FakeFailures()), messages(b"a", b"b", b"c")
    handle(consumer, batch)
    assert consumer.batches == [["a", "b", "c"]]
    assert [m.settled for m in batch] == [[], [], ["ack-multiple"]]


def test_an_undecodable_message_is_routed_and_the_rest_applied() -> None:
    failures = FakeFailures()
    consumer, batch = Recorder(failures), messages(b"a", b"bad", b"c")
    handle(consumer, batch)
    assert consumer.batches == [["a", "c"]]
    assert isinstance(failures.failed_with[b"bad"], UnapplicableEvent)
    assert batch[1].settled == ["routed"]


def test_a_poison_event_falls_back_to_one_by_one_and_only_it_fails() -> None:
    failures = FakeFailures()
    consumer, batch = Recorder(failures), messages(b"a", b"poison", b"c")
    handle(consumer, batch)
    assert consumer.batches == [["a"], ["c"]]
    assert list(failures.failed_with) == [b"poison"]
    assert batch[0].settled == ["ack-multiple"] and batch[2].settled == ["ack-multiple"]


def test_an_unreachable_database_holds_the_batch_until_it_is_back() -> None:
    consumer, batch = Recorder(FakeFailures(), down=2), messages(b"a", b"b")
    handle(consumer, batch)
    assert consumer.batches == [["a", "b"]]
    assert consumer.database_ok
    assert batch[1].settled == ["ack-multiple"]


def test_asked_to_stop_while_the_database_is_down_leaves_the_batch_for_redelivery() -> None:
    consumer, batch = Recorder(FakeFailures(), down=1), messages(b"a", b"b")
    consumer._stop.set()
    handle(consumer, batch)
    assert consumer.batches == []
    assert [m.settled for m in batch] == [["nack"], ["nack"]]


def test_an_invalid_event_is_archived_with_its_reason_and_acked_alone() -> None:
    consumer, batch = Recorder(FakeFailures()), messages(b"a", b'{"id": 1}', b"c")
    handle(consumer, batch)
    [row] = consumer.invalid
    assert (row.outcome, row.reason) == ("invalid", "data.object.payment_status: required")
    assert row.event_id.startswith("body:")
    assert consumer.batches == [["a", "c"]]
    assert [m.settled for m in batch] == [[], ["ack"], ["ack-multiple"]]


class BrokerDownFailures(FakeFailures):
    async def failed(self, message: FakeMessage, exc: BaseException) -> None:
        raise PublishFailed("broker unreachable")


def test_no_exception_stops_the_consumer_not_even_a_failure_router_that_cannot_publish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("worker.consumer.FAILURE_PAUSE", 0)
    consumer, batch = Recorder(BrokerDownFailures()), messages(b"a", b"crash", b"poison", b"c")
    handle(consumer, batch)  # returns: nothing escapes
    assert consumer.batches == [["a"], ["c"]]
    assert batch[1].settled == ["nack"] and batch[2].settled == ["nack"]  # left for redelivery


class FakeQueue:
    """Delivers its messages to the consumer's callback at once, as a prefetch would."""

    name = "fake"

    def __init__(self, bodies: list[FakeMessage]) -> None:
        self.bodies = bodies

    async def consume(self, callback: Any) -> str:
        for message in self.bodies:
            await callback(message)
        return "tag"

    async def cancel(self, tag: str) -> None:
        return None


class Pipelined(Recorder):
    """Records when each batch is decoded and applied; an apply holds until released."""

    def __init__(self, failures: FakeFailures) -> None:
        super().__init__(failures)
        self._batch_size = 2
        self.log: list[str] = []
        self.applying = 0
        self.release = asyncio.Event()

    def decode(self, message: AbstractIncomingMessage, seen: dict[str, Any] | None) -> Item:
        self.log.append(f"decode {message.body.decode()}")
        return super().decode(message, seen)

    async def apply(self, items: list[Item]) -> list[Outcome]:
        assert self.applying == 0, "two batches applied at once"
        self.applying += 1
        self.log.append(f"apply {items[0].event_id}")
        await self.release.wait()
        self.applying -= 1
        return await super().apply(items)


async def turns_until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until the condition holds (a bounded number of turns, no timer)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_the_next_batch_is_decoded_while_one_commits_and_batches_apply_in_order() -> None:
    consumer, batch = Pipelined(FakeFailures()), messages(b"a", b"b", b"c", b"d", b"e")

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(cast(Any, FakeQueue(batch)), stop))
        await turns_until(lambda: "decode c" in consumer.log)  # while the first batch is held
        assert consumer.log == ["decode a", "decode b", "apply a", "decode c", "decode d"]
        consumer.release.set()
        await turns_until(lambda: len(consumer.batches) == 3)
        stop.set()
        await running

    asyncio.run(scenario())
    assert consumer.batches == [["a", "b"], ["c", "d"], ["e"]]
    assert [m.settled for m in batch] == [
        [],
        ["ack-multiple"],
        [],
        ["ack-multiple"],
        ["ack-multiple"],
    ]


def test_stopping_finishes_the_batch_in_flight_before_returning() -> None:
    consumer, batch = Pipelined(FakeFailures()), messages(b"a", b"b")

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(consumer.run(cast(Any, FakeQueue(batch)), stop))
        await turns_until(lambda: "apply a" in consumer.log)
        stop.set()
        await asyncio.sleep(0)
        assert not running.done()  # held by the commit in flight
        consumer.release.set()
        await running

    asyncio.run(scenario())
    assert consumer.batches == [["a", "b"]]
    assert batch[1].settled == ["ack-multiple"]
