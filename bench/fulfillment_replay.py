"""How fast `fulfillment replay` sends published outbox messages to one subscriber's queue.

    python -m bench.fulfillment_replay [--n 5000]

In a scratch database and vhost (dropped after): N paid orders applied through the store, their
outbox rows marked published, the queue conekta.fulfillment.shipping declared as the reference
subscriber declares it; then `ops.fulfillment.replay` is timed (confirmed publishes).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

import aio_pika

from core import broker, topology
from domain.order_event import parse_order_event
from domain.plan import Incoming
from examples import fulfillment_subscriber as example
from ops import fulfillment
from store import Store
from testkit import isolation
from testkit.events import order_event

NAME = "shipping"


async def main(n: int) -> None:
    vhost = f"conekta-bench-replay-{uuid.uuid4().hex[:8]}"
    url = await isolation.create_vhost(vhost)
    try:
        async with isolation.scratch_database("replay") as database_url:
            print(await measure(database_url, url, n))
    finally:
        await isolation.delete_vhost(vhost)


async def measure(database_url: str, amqp_url: str, n: int) -> str:
    connection = await aio_pika.connect_robust(amqp_url)
    publisher = broker.Publisher(await broker.connect(amqp_url, "bench", attempts=1), timeout=10)
    try:
        await broker.declare_topology(connection)
        await example.declare(await connection.channel(), NAME)
        async with Store.open(database_url) as store:
            now = datetime.now(UTC)
            for start in range(0, n, 1000):
                bodies = [
                    order_event("order.paid", f"ord_bench{i}")
                    for i in range(start, min(n, start + 1000))
                ]
                await store.apply.batch([Incoming(parse_order_event(b), b, now) for b in bodies])
            async with store.pool.acquire() as db:
                await db.execute("UPDATE outbox SET sent_at = now()")
            selection = fulfillment.Selection(topology.subscriber_queue(NAME))
            started = time.perf_counter()
            result = await fulfillment.replay(
                store, publisher, connection, selection, (NAME,), "os:bench"
            )
            took = time.perf_counter() - started
        depth = await topology.probe_queue(connection, selection.queue)
    finally:
        await publisher.close()
        await connection.close()
    return (
        f"replayed {result.published} of {result.matched} in {took:.1f} s "
        f"({result.published / took:.0f}/s); {selection.queue} holds {depth and depth[0]}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    asyncio.run(main(parser.parse_args().n))
