"""A reference fulfillment subscriber: copy it, replace `act` with your service's work.

    AMQP_URL=amqp://conekta-fulfillment-shipping:PASSWORD@rabbitmq:5672/ \\
    DATABASE_URL=postgresql://shipping@db/shipping SUBSCRIBER_NAME=shipping \\
    python examples/fulfillment_subscriber.py

The contract (README "For fulfillment services"): at least once, so deduplicate on message_id;
one order's messages in the order of its changes; dispatch on the body's `event_type` (a replay
to your queue arrives with your queue's name as routing key).

- Its queue `conekta.fulfillment.<name>` (quorum, delivery limit, its own dead-letter exchange
  and queue), bound by one key per event type it handles: declared here, as its own broker user.
- Each message: in ONE transaction of its own database, remember the message id (a primary key)
  and do the work; commit; only then ack. A crash before the commit: redelivered and done then.
  A crash after the commit, before the ack: redelivered, the id is known, acked without work.
- A poison message (not the contract): rejected without requeue, to its dead-letter queue.
  A failure of the work itself: requeued; past the delivery limit the broker dead-letters it.
  The database unreachable: stop (exit 1) and let the supervisor restart us; unacked messages
  go back to the queue.
- SIGTERM/SIGINT: stop consuming, finish the message in hand, close, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

log = logging.getLogger("fulfillment-subscriber")

EXCHANGE = "conekta.fulfillment"
DELIVERY_LIMIT = 20
PREFETCH = 32  # handled one at a time (per-order order); prefetch only saves round trips

# What this service does per event type; only these are bound (README: what each key means).
ACTIONS = {
    "order.pending_payment": "await cash payment (show the reference until expires_at)",
    "order.paid": "ship",
    "order.expired": "release reserved stock",
    "order.canceled": "release reserved stock",
    "order.voided": "release reserved stock",
    "order.declined": "release reserved stock",
    "order.partially_refunded": "refund part: adjust the shipment",
    "order.refunded": "refunded: stop or recall the shipment",
    "charge.refunded": "refunded: stop or recall the shipment",
    "charge.chargeback.created": "hold: disputed",
    "charge.chargeback.lost": "disputed and lost: recall, write off",
    "charge.chargeback.won": "dispute won: release the hold",
}

# Keep seen ids at least as long as a replay can reach back (the outbox's retention, 13 months).
SCHEMA = """
CREATE TABLE IF NOT EXISTS fulfillment_seen (
    message_id text PRIMARY KEY,
    handled_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS fulfillment_actions (  -- stands for your service's own work
    message_id text NOT NULL, order_id text NOT NULL, event_type text NOT NULL,
    livemode boolean NOT NULL, action text NOT NULL
);
"""


class Poison(Exception):
    """The message is not the contract: retrying cannot help."""


def queue_arguments(name: str) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": f"{EXCHANGE}.{name}.dlx",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare(channel: AbstractChannel, name: str) -> AbstractQueue:
    """Our dead-letter exchange and queue, then our queue and one binding per handled type."""
    queue_name = f"{EXCHANGE}.{name}"
    dlx = await channel.declare_exchange(
        f"{queue_name}.dlx", aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_letters = await channel.declare_queue(
        f"{queue_name}.dead-letters",
        durable=True,
        arguments={"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT},
    )
    await dead_letters.bind(dlx, "")
    queue = await channel.declare_queue(queue_name, durable=True, arguments=queue_arguments(name))
    for event_type in ACTIONS:
        await queue.bind(EXCHANGE, event_type)
    return queue


def parse(message: AbstractIncomingMessage) -> dict[str, Any]:
    try:
        body = orjson.loads(message.body)
    except orjson.JSONDecodeError as exc:
        raise Poison(f"not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("schema_version") != 1:
        raise Poison("not a schema_version 1 fulfillment message")
    if not all(isinstance(body.get(k), str) for k in ("message_id", "event_type", "order_id")):
        raise Poison("message_id, event_type and order_id must be strings")
    return body


async def act(connection: asyncpg.pool.PoolConnectionProxy[Any], body: dict[str, Any]) -> None:
    """Your work, inside the transaction that remembers the message id."""
    action = ACTIONS.get(body["event_type"])
    if action is None:  # a type we do not bind (e.g. reached us by a replay): nothing to do
        return
    await connection.execute(
        "INSERT INTO fulfillment_actions VALUES ($1, $2, $3, $4, $5)",
        body["message_id"],
        body["order_id"],
        body["event_type"],
        bool(body.get("livemode")),  # test-mode orders: act in your test environment only
        action,
    )


async def handle(pool: asyncpg.Pool[Any], message: AbstractIncomingMessage) -> None:
    try:
        body = parse(message)
    except Poison as exc:
        log.warning("poison message %s to the dead letters: %s", message.message_id, exc)
        await message.reject(requeue=False)
        return
    try:
        async with pool.acquire() as connection, connection.transaction():
            new = await connection.fetchval(
                "INSERT INTO fulfillment_seen (message_id) VALUES ($1) "
                "ON CONFLICT DO NOTHING RETURNING true",
                body["message_id"],
            )
            if new:
                await act(connection, body)
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
        raise  # our database is down: stop (the message returns to the queue)
    except Exception:
        log.exception("message %s failed: requeued", body["message_id"])
        await message.nack(requeue=True)
        return
    await message.ack()  # after the commit: a crash in between means a redelivery, seen above


async def run(amqp_url: str, database_url: str, name: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await pool.execute(SCHEMA)
        connection = await aio_pika.connect_robust(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await declare(channel, name)
            async with queue.iterator() as messages:
                # Closing the iterator cancels the consumer and ends the loop below.
                closer = asyncio.create_task(_close_on(stop, messages))
                log.info("consuming %s", queue.name)
                async for message in messages:
                    await handle(pool, message)  # one at a time: per-order order holds
                closer.cancel()
    finally:
        await pool.close()
    log.info("stopped")


async def _close_on(stop: asyncio.Event, messages: aio_pika.abc.AbstractQueueIterator) -> None:
    await stop.wait()
    await messages.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(
        run(
            os.environ["AMQP_URL"],
            os.environ["DATABASE_URL"],
            os.environ.get("SUBSCRIBER_NAME", "shipping"),
        )
    )
