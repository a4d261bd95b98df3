"""A fulfillment subscriber's broker user (core.topology.subscriber_user) on the real broker: it
declares, binds and consumes its own queues, and can touch nothing else: not conekta.orders, not
conekta.events, not another subscriber's queue, and it cannot publish fulfillment messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
import pytest

from core import broker as core_broker
from core import topology
from core.errors import PublishFailed
from examples import fulfillment_subscriber as example
from testkit.fulfillment import subscriber_user

REFUSED = (aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed)
OTHER = topology.subscriber_queue("billing")


async def _get(channel: Any, queue: str) -> None:
    await (await channel.get_queue(queue, ensure=False)).get(fail=False)


async def _consume(channel: Any, queue: str) -> None:
    await (await channel.get_queue(queue, ensure=False)).consume(_ignore)


async def _ignore(message: Any) -> None:
    pass


async def _purge(channel: Any, queue: str) -> None:
    await (await channel.get_queue(queue, ensure=False)).purge()


async def _delete(channel: Any, queue: str) -> None:
    await channel.queue_delete(queue)


async def _bind_to_fulfillment(channel: Any, queue: str) -> None:
    await (await channel.get_queue(queue, ensure=False)).bind(topology.FULFILLMENT_EXCHANGE, "#")


async def _bind_own_to_events(channel: Any, _: str) -> None:
    """Its own queue bound to the raw webhooks: needs read on conekta.events."""
    queue = await channel.get_queue(topology.subscriber_queue("shipping"), ensure=False)
    await queue.bind(topology.EVENTS_EXCHANGE, "#")


async def _declare_foreign(channel: Any, queue: str) -> None:
    await channel.declare_queue(queue + ".mine", durable=True)


Operation = Callable[[Any, str], Awaitable[None]]
FORBIDDEN: tuple[tuple[Operation, str], ...] = (
    (_get, topology.ORDERS_QUEUE),
    (_consume, topology.ORDERS_QUEUE),
    (_purge, topology.ORDERS_QUEUE),
    (_get, OTHER),
    (_consume, OTHER),
    (_purge, OTHER),
    (_delete, OTHER),
    (_bind_to_fulfillment, OTHER),
    (_get, topology.FULFILLMENT_UNROUTED_QUEUE),
    (_get, topology.DEAD_LETTER_QUEUE),
    (_bind_own_to_events, ""),
    (_declare_foreign, OTHER),
    (_declare_foreign, topology.FULFILLMENT_UNROUTED_QUEUE),
)


async def test_a_subscriber_user_binds_its_own_queue_and_reads_nothing_else(
    amqp_url: str,
) -> None:
    async with (
        subscriber_user(amqp_url, "shipping") as shipping,
        subscriber_user(amqp_url, "billing") as billing,
    ):
        for url, name in ((billing, "billing"), (shipping, "shipping")):
            connection = await aio_pika.connect(url)
            queue = await example.declare(await connection.channel(), name)  # binds too
            await queue.consume(_ignore)  # and consumes
            await connection.close()

        for operation, queue_name in FORBIDDEN:
            connection = await aio_pika.connect(shipping)
            try:
                with pytest.raises(REFUSED):
                    await operation(await connection.channel(), queue_name)
            finally:
                await connection.close()

        # Nor can it publish: not to conekta.fulfillment (forged messages for everyone), not to
        # another queue by name.
        for exchange, key in ((topology.FULFILLMENT_EXCHANGE, "order.paid"), ("", OTHER)):
            publisher = core_broker.Publisher(
                await core_broker.connect(shipping, "test subscriber", attempts=1), timeout=5
            )
            try:
                with pytest.raises(PublishFailed, match="ACCESS_REFUSED"):
                    await publisher.publish(exchange, key, b"{}", message_id="forged")
            finally:
                await publisher.close()
