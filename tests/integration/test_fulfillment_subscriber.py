"""The reference subscriber (examples/fulfillment_subscriber.py) as a real process, as its own
broker user, against the real broker and its own tables: every message handled once, through
duplicates, a redelivery and a crash between its commit and its ack; a poison message in its
dead-letter queue; SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any, TypeAlias

import aio_pika
import asyncpg
from prometheus_client import REGISTRY

from core import topology
from core.broker import Publisher
from examples import fulfillment_subscriber as example
from testkit.fulfillment import fulfillment_message, subscriber_user
from testkit.services import count
from testkit.wait import wait_for
from worker import runner

Db: TypeAlias = "asyncpg.Connection[Any]"
EXAMPLE = Path(example.__file__)
NAME = "shipping"


def test_the_example_declares_what_the_topology_says() -> None:
    """core.topology owns the shape of a subscriber queue; the example (standalone, to copy)
    spells it out: they must agree, or a redeclare fails with PRECONDITION_FAILED."""
    spec = topology.subscriber(NAME, tuple(example.ACTIONS))
    assert example.queue_arguments(NAME) == spec.queue.arguments
    assert example.DELIVERY_LIMIT == topology.DELIVERY_LIMIT
    assert example.EXCHANGE == topology.FULFILLMENT_EXCHANGE
    assert set(example.ACTIONS) <= set(topology.ORDER_EVENT_TYPES)


async def _depth(connection: aio_pika.abc.AbstractConnection, queue: str) -> tuple[int, int]:
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        await channel.close()


async def test_reference_subscriber_handles_each_message_once(
    amqp_url: str, database_url: str, db: Db
) -> None:
    paid = fulfillment_message("order.paid", "ord_sub1")
    refunded = fulfillment_message("order.refunded", "ord_sub1", status="refunded")
    redelivered = fulfillment_message("order.paid", "ord_sub2")
    committed_not_acked = fulfillment_message("order.paid", "ord_sub3")
    later = fulfillment_message("charge.chargeback.created", "ord_sub4")
    queue = topology.subscriber_queue(NAME)
    await db.execute(example.SCHEMA)
    # As if the subscriber committed this one and died before its ack.
    await db.execute(
        "INSERT INTO fulfillment_seen (message_id) VALUES ($1)", committed_not_acked.message_id
    )
    admin = await aio_pika.connect(amqp_url)
    publisher = Publisher(await aio_pika.connect_robust(amqp_url), timeout=5)
    async with subscriber_user(amqp_url, NAME) as url:
        # The subscriber's own user can declare its queues (the example's code).
        own = await aio_pika.connect(url)
        await example.declare(await own.channel(), NAME)
        await own.close()
        for message in (paid, paid, refunded, redelivered, committed_not_acked):
            await publisher.publish(
                topology.FULFILLMENT_EXCHANGE,
                message.routing_key,
                message.body,
                message_id=message.message_id,
            )
        await publisher.publish(
            topology.FULFILLMENT_EXCHANGE, "order.paid", b"{not json", message_id="poison"
        )
        await _deliver_without_ack(admin, queue)  # every one comes back redelivered

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            env={**os.environ, "AMQP_URL": url, "DATABASE_URL": database_url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:

            async def actions(n: int) -> bool:
                return await count(db, "SELECT count(*) FROM fulfillment_actions") >= n

            await wait_for(lambda: actions(3), what="the three new messages handled")
            await wait_for(
                lambda: _is(_depth(admin, topology.subscriber_dead_letter_queue(NAME)), (1, 0)),
                what="the poison message in the subscriber's dead-letter queue",
            )
            # Live: a duplicate of a handled one, and a new one.
            for message in (paid, later):
                await publisher.publish(
                    topology.FULFILLMENT_EXCHANGE,
                    message.routing_key,
                    message.body,
                    message_id=message.message_id,
                )
            await wait_for(lambda: actions(4), what="the live message handled")
            await wait_for(lambda: _is(_depth(admin, queue), (0, 1)), what="everything acked")
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, output.decode()
    assert b"stopped" in output
    rows = await db.fetch(
        "SELECT message_id, event_type, action FROM fulfillment_actions ORDER BY message_id"
    )
    assert [(r["message_id"], r["event_type"]) for r in rows] == sorted(
        (m.message_id, m.routing_key) for m in (paid, refunded, redelivered, later)
    )
    assert await count(db, "SELECT count(*) FROM fulfillment_seen") == 5
    assert await _depth(admin, queue) == (0, 0)  # acked, and the consumer gone
    channel = await admin.channel()
    dead = await (await channel.get_queue(topology.subscriber_dead_letter_queue(NAME))).get()
    assert dead.body == b"{not json"
    await dead.ack()
    await admin.close()
    await publisher.close()


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def _deliver_without_ack(connection: aio_pika.abc.AbstractConnection, queue: str) -> None:
    """A consumer that takes every message and closes its channel without acking."""
    channel = await connection.channel()
    taken = 0
    subscriber_queue = await channel.get_queue(queue, ensure=False)
    while await subscriber_queue.get(fail=False, no_ack=False) is not None:
        taken += 1
    assert taken == 6
    await channel.close()


async def test_subscriber_states_and_metrics_by_passive_declares(amqp_url: str) -> None:
    """A configured subscriber's queue: depth, consumers, dead letters; a missing one says so.
    The worker's watcher exports the same as metrics."""
    admin = await aio_pika.connect_robust(amqp_url)
    publisher = Publisher(await aio_pika.connect_robust(amqp_url), timeout=5)
    async with subscriber_user(amqp_url, NAME) as url:
        own = await aio_pika.connect(url)
        channel = await own.channel()
        queue = await example.declare(channel, NAME)
        message = fulfillment_message("order.paid", "ord_state1")
        for _ in range(3):
            await publisher.publish(
                topology.FULFILLMENT_EXCHANGE, "order.paid", message.body, message_id="m"
            )
        rejected = await queue.get()
        await rejected.reject(requeue=False)  # one dead letter
        states = await topology.subscriber_states(admin, (NAME, "billing"))
        assert [s.as_dict() for s in states] == [
            {
                "name": NAME,
                "queue": "conekta.fulfillment.shipping",
                "exists": True,
                "messages": 2,
                "consumers": 0,
                "dead_letter_queue": "conekta.fulfillment.shipping.dead-letters",
                "dead_letters": 1,
            },
            {
                "name": "billing",
                "queue": "conekta.fulfillment.billing",
                "exists": False,
                "messages": 0,
                "consumers": 0,
                "dead_letter_queue": "conekta.fulfillment.billing.dead-letters",
                "dead_letters": None,
            },
        ]
        stop = asyncio.Event()
        watcher = asyncio.create_task(runner._watch_subscribers(admin, (NAME, "billing"), stop))

        def sample(metric: str, name: str) -> float | None:
            return REGISTRY.get_sample_value(metric, {"subscriber": name})

        async def exported() -> bool:
            return sample("conekta_fulfillment_subscriber_messages", NAME) == 2

        await wait_for(exported, what="the watcher's first pass")
        stop.set()
        await watcher
        assert sample("conekta_fulfillment_subscriber_dead_letters", NAME) == 1
        assert sample("conekta_fulfillment_subscriber_queue_exists", NAME) == 1
        assert sample("conekta_fulfillment_subscriber_queue_exists", "billing") == 0
        assert sample("conekta_fulfillment_subscriber_consumers", NAME) == 0
        await own.close()
    await publisher.close()
    await admin.close()
