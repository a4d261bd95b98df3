"""CPU per confirmed publish: the product's Publisher (waits for the broker's confirm only) against
aiormq's default (`wait=True`: also waits for its writer to drain the socket, holding the
channel's lock meanwhile), at a few publishes in flight, on a fresh vhost's orders queue.

    python -m bench.publish_wait [--n 10000] [--in-flight 1 4 64]

Prints one line per measure: in flight, way, publishes/s, us of CPU per publish (this process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import aiormq
import uvloop

from bench import events, stack
from core import broker, topology
from testkit import isolation

Publish = Callable[[int], Awaitable[None]]


async def _measure(publish: Publish, n: int, in_flight: int) -> tuple[float, float]:
    slots = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with slots:
            await publish(i)

    started, cpu = time.monotonic(), stack.cpu_seconds(os.getpid())
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.monotonic() - started), (stack.cpu_seconds(os.getpid()) - cpu) / n * 1e6


async def main(n: int, in_flights: list[int]) -> None:
    vhost = f"conekta-bench-publish-{time.monotonic_ns()}"
    amqp_url = await isolation.create_vhost(vhost)
    connection = await broker.connect(amqp_url, "bench publish_wait")
    await topology.declare(connection)
    publisher = broker.Publisher(connection, 10.0)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    raw = await channel.get_underlay_channel()
    body = events.paid_events(1)[0][0]
    queue = await channel.get_queue(topology.ORDERS_QUEUE, ensure=False)

    async def product(i: int) -> None:
        await publisher.publish(topology.EVENTS_EXCHANGE, "order.paid", body, message_id=str(i))

    async def drained(i: int) -> None:
        properties = aiormq.spec.Basic.Properties(message_id=str(i), delivery_mode=2)
        confirm = await raw.basic_publish(
            body, exchange=topology.EVENTS_EXCHANGE, routing_key="order.paid",
            properties=properties, mandatory=True, timeout=10,
        )  # fmt: skip
        assert isinstance(confirm, aiormq.spec.Basic.Ack)

    try:
        for in_flight in in_flights:
            for name, publish in (("wait=True", drained), ("Publisher", product)):
                rate, cpu = await _measure(publish, n, in_flight)
                print(f"in flight {in_flight:3d}  {name:10s} {rate:8,.0f}/s  {cpu:6.1f} us/publish")
                await queue.purge()
    finally:
        await connection.close()
        await isolation.delete_vhost(vhost)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 4, 64])
    args = parser.parse_args()
    uvloop.run(main(args.n, args.in_flight))
