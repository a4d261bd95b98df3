"""Failures heal by themselves and shout: a database refusing writes (disk full, read-only), dead
letters that looking cannot lose, purge tombstones, the audit trail, fulfillment order per order.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from dataclasses import replace
from typing import Any, TypeAlias

import aio_pika
import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from core import topology
from core.errors import PublishFailed
from core.settings import Settings
from core.supervisor import for_settings
from domain.order_event import parse_order_event
from domain.plan import Incoming
from store import Store
from testkit import dbfaults, signing
from testkit.events import order_event
from testkit.processes import cli
from testkit.services import bind_probe, count, drain, publish_events, running_worker
from testkit.wait import wait_for
from worker.outbox import OutboxRelay
from worker.runner import run_worker

Db: TypeAlias = "asyncpg.Connection[Any]"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def settled(db: Db, events: int, unsent: int = 0) -> bool:
    archived = await count(db, "SELECT count(*) FROM events")
    pending = await count(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return archived >= events and pending == unsent


async def test_a_worker_waiting_for_its_database_stops_when_asked(settings: Settings) -> None:
    """SIGTERM during start-up (database down, say) ends the worker at once, not after the wait."""
    stop = asyncio.Event()
    unreachable = replace(settings, database_url="postgresql://127.0.0.1:9/nowhere")
    worker = asyncio.create_task(run_worker(unreachable, stop, serve_metrics=False))
    await asyncio.wait({worker}, timeout=0.5)  # long enough to fail once and back off
    assert not worker.done()
    stop.set()
    await asyncio.wait_for(worker, timeout=10)  # returns: no TaskFailing, no hang


@pytest.mark.parametrize("sqlstate", ["53100", "25006"])  # disk full; read-only (failover)
async def test_a_database_refusing_writes_heals_without_a_restart(
    sqlstate: str, settings: Settings, broker: Any, db: Db
) -> None:
    settings = replace(settings, task_healthy_after=1.0)
    probe = await bind_probe(broker, topology.FULFILLMENT_EXCHANGE)
    orders = [order_event("order.paid", f"ord_h{i}", customer_id="cus_h") for i in range(120)]
    others = [order_event("order.updated", f"ord_x{i}") for i in range(12)]
    supervisor = for_settings(settings, asyncio.Event())
    async with running_worker(settings, supervisor):
        # 1. The relay: its marks fail after publishing; it restarts until they succeed.
        await dbfaults.inject(db, sqlstate, tables=["outbox"], ops=["UPDATE"])
        relay_failures = sample("conekta_task_failures_total", task="outbox")
        await publish_events(broker, orders[:40] + others[:4])
        await wait_for(
            lambda: _async(sample("conekta_task_failures_total", task="outbox") > relay_failures),
            what="the relay failing",
        )
        assert not supervisor.ready() and supervisor.failing() == ["outbox"]
        await dbfaults.remove(db)
        await wait_for(lambda: settled(db, 44), what="relay healed")
        await wait_for(lambda: _async(supervisor.ready()), what="ready again")

        # 2. Both consumers: they hold their batches (no retry spent, nothing dead-lettered).
        await dbfaults.inject(db, sqlstate)
        await publish_events(broker, orders[40:] + others[4:])

        async def held() -> bool:
            return sample("conekta_worker_database_unavailable") == 1

        await wait_for(held, what="consumers holding")
        assert await count(db, "SELECT count(*) FROM events") == 44
        await dbfaults.remove(db)
        await wait_for(lambda: settled(db, 132), what="consumers healed")
    # each payment and its fee
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 240
    assert await count(db, "SELECT count(*) FROM dead_letters") == 0
    assert await count(db, "SELECT count(*) FROM events WHERE outcome = 'ignored'") == 12
    delivered = {m.message_id for m in await drain(await broker.channel(), probe)}
    assert len(delivered) == 120  # every fulfillment message (some twice: same id)


async def _async(value: bool) -> bool:
    return value


async def test_looking_at_a_dead_letter_cannot_lose_it(
    settings: Settings, amqp_url: str, db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery limit 3 on every queue: a crash-looped message reaches the dead-letter table
    (never dropped), and `dlq list`/`show` ten times leave it there."""
    monkeypatch.setattr(topology, "QUEUES", topology.queues(limit=3))
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    for spec in topology.QUEUES:  # the vhost comes declared with limit 20, as migrate leaves it
        await channel.queue_delete(spec.name)
    await channel.close()
    await topology.declare(connection)
    crashed = order_event("order.paid", "ord_crash")
    await publish_events(connection, [crashed])
    channel = await connection.channel()
    queue = await channel.get_queue(topology.ORDERS_QUEUE, ensure=False)
    for _ in range(4):  # a worker crashing on it, four times
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        await message.nack(requeue=True)
    await channel.close()
    async with running_worker(settings):

        async def stored() -> bool:
            return await count(db, "SELECT count(*) FROM dead_letters") == 1

        await wait_for(stored, what="dead letter stored")
    [letter] = await db.fetch("SELECT * FROM dead_letters")
    assert letter["kind"] == "delivery_limit"
    assert letter["source_queue"] == topology.ORDERS_QUEUE
    message_id = orjson.loads(crashed)["id"]
    for _ in range(10):
        code, output = await cli(settings, "dlq", "list", "--json")
        assert code == 0, output
        assert [r["id"] for r in orjson.loads(output)] == [message_id]
    code, output = await cli(settings, "dlq", "show", message_id)
    assert orjson.loads(output)["body"]["id"] == message_id
    await connection.close()


async def test_purge_leaves_a_tombstone_and_an_audit_trail(
    settings: Settings, broker: Any, db: Db
) -> None:
    await db.execute(POISON)
    poison = order_event("order.paid", "ord_poison", amount=900, fee=9, customer_id="cus_p")
    poison_id = orjson.loads(poison)["id"]
    async with running_worker(replace(settings, max_attempts=1)):
        await publish_events(broker, [poison])

        async def dead() -> bool:
            return await count(db, "SELECT count(*) FROM dead_letters") == 1

        await wait_for(dead, what="poison dead-lettered")
        code, output = await cli(
            settings, "dlq", "purge", poison_id, "--yes", "--reason", "test order", "--json"
        )
        assert code == 0, output
        assert orjson.loads(output)["purged"] == [poison_id]
        await db.execute("DROP TRIGGER poison ON orders")  # the "fix"
        redelivered = sample("conekta_worker_events_total", outcome="redelivered")
        await publish_events(broker, [poison])  # Conekta resends it

        async def recognised() -> bool:
            return sample("conekta_worker_events_total", outcome="redelivered") > redelivered

        await wait_for(recognised, what="resend recognised")
    assert await count(db, "SELECT count(*) FROM orders") == 0  # not applied behind our back
    code, output = await cli(settings, "events", "show", poison_id)
    event = orjson.loads(output)
    assert event["outcome"] == "purged"
    assert event["note"] == f"purged by os:{getpass.getuser()}: test order"
    code, output = await cli(settings, "events", "replay", "--json")
    assert orjson.loads(output)["replayed"] == 0  # tombstones are skipped...
    code, output = await cli(settings, "events", "replay", "--include-purged", "--json")
    assert orjson.loads(output)["outcomes"] == {"applied": 1}  # ...unless asked for
    assert await count(db, "SELECT count(*) FROM orders WHERE status = 'paid'") == 1
    code, output = await cli(settings, "audit", "list", "--json")
    trail = orjson.loads(output)
    assert [(e["action"], e["count"]) for e in trail] == [
        ("dlq.purge", 1),
        ("events.replay", 0),
        ("events.replay", 1),
    ]
    assert {e["actor"] for e in trail} == {f"os:{getpass.getuser()}"}
    assert trail[0]["details"]["reason"] == "test order"
    code, output = await cli(settings, "audit", "list", "--since", "2999-01-01", "--json")
    assert orjson.loads(output) == []
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await db.execute("DELETE FROM audit_log")


POISON = """
CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 'ord_poison' THEN RAISE EXCEPTION 'simulated bug'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION poison();
"""


async def test_fulfillment_keeps_each_orders_order_under_concurrency(
    settings: Settings, broker: Any, db: Db
) -> None:
    """Two workers, batches of many orders: each order's pending_payment goes out before its
    paid, though a relay publishes a page concurrently."""
    probe = await bind_probe(broker, topology.FULFILLMENT_EXCHANGE)
    n = 300
    events = []
    for i in range(n):
        events.append(order_event("order.pending_payment", f"ord_o{i}", created_at=1_700_000_000))
        events.append(order_event("order.paid", f"ord_o{i}", created_at=1_700_000_100))
    async with running_worker(settings), running_worker(replace(settings, batch_size=64)):
        await publish_events(broker, events[0::2])
        await publish_events(broker, events[1::2])
        await wait_for(lambda: settled(db, 2 * n), timeout=60, what="all applied and sent")
    first_seen: dict[str, dict[str, str]] = {}  # order -> message id -> status, in arrival order
    for message in await drain(await broker.channel(), probe):
        body = orjson.loads(message.body)
        first_seen.setdefault(body["order_id"], {}).setdefault(message.message_id, body["status"])
    assert len(first_seen) == n
    paid_overtaken = [o for o, m in first_seen.items() if list(m.values())[-1] != "paid"]
    assert not paid_overtaken
    pairs = sum(list(m.values()) == ["pending_payment", "paid"] for m in first_seen.values())
    assert pairs > n // 2  # most orders had both changes applied (else the test proves little)


async def test_retired_v1_queues_are_unbound_and_drained(
    settings: Settings, amqp_url: str, db: Db
) -> None:
    """An upgrade on a broker with the v1 queues: their bindings go, their messages are kept."""
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    unhandled = await channel.declare_exchange(
        topology.UNHANDLED_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    old = await channel.declare_queue(
        "conekta.unhandled", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await old.bind(unhandled, "")
    body = order_event("order.updated", "ord_old")
    await unhandled.publish(
        aio_pika.Message(
            body,
            message_id=orjson.loads(body)["id"],
            type="order.updated",
            headers=signing.signed_headers(body),
        ),
        "",
    )
    async with running_worker(settings):

        async def archived() -> bool:
            return await count(db, "SELECT count(*) FROM events WHERE outcome = 'ignored'") == 1

        await wait_for(archived, what="the v1 queue drained")
        await publish_events(connection, [order_event("order.updated", "ord_new")])

        async def archived_once_more() -> bool:
            return await count(db, "SELECT count(*) FROM events") == 2

        await wait_for(archived_once_more, what="a new unhandled event archived")
    await publish_events(connection, [order_event("order.updated", "ord_later")])
    depths = {}
    for name in ("conekta.unhandled", topology.UNHANDLED_QUEUE):
        queue = await channel.declare_queue(name, passive=True)
        depths[name] = queue.declaration_result.message_count
    assert depths == {"conekta.unhandled": 0, topology.UNHANDLED_QUEUE: 1}  # v1 is unbound
    await connection.close()


class FlakyPublisher:
    """Fails the first publish of each order's pending_payment message; records what went out."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []  # (order, routing key), in publish order
        self._failed: set[str] = set()

    async def publish(self, exchange: str, routing_key: str, body: bytes, **_: Any) -> None:
        order = orjson.loads(body)["order_id"]
        await asyncio.sleep(0.001 if routing_key == "order.pending_payment" else 0)
        if routing_key == "order.pending_payment" and order not in self._failed:
            self._failed.add(order)
            raise PublishFailed("nack")
        self.sent.append((order, routing_key))


async def test_a_failed_publish_does_not_let_a_later_change_of_its_order_overtake(
    store: Store,
) -> None:
    items = []
    for i in range(100):
        for event_type, at in (("order.pending_payment", 0), ("order.paid", 100)):
            body = order_event(event_type, f"ord_f{i}", created_at=1_700_000_000 + at)
            items.append(Incoming(parse_order_event(body), body, None))
    await store.apply.batch(items)
    publisher = FlakyPublisher()
    relays = [OutboxRelay(store, publisher, 0.01) for _ in range(2)]  # type: ignore[arg-type]

    async def drain_outbox(relay: OutboxRelay) -> None:
        while await count_unsent(store):
            with contextlib.suppress(PublishFailed):
                await relay.flush_once()

    await asyncio.gather(*(drain_outbox(r) for r in relays))
    by_order: dict[str, list[str]] = {}
    for order, routing_key in publisher.sent:
        by_order.setdefault(order, []).append(routing_key)
    assert len(by_order) == 100
    assert all(keys == ["order.pending_payment", "order.paid"] for keys in by_order.values())


async def count_unsent(store: Store) -> int:
    return int(await store.pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
