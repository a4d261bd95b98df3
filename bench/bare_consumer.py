"""The worker's floor: consume the same queue, same prefetch, ack per batch; nothing else.

Prints the rate (events/s) from the first delivery to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aio_pika
import uvloop

from core import topology


async def main(amqp_url: str, n: int, prefetch: int, batch: int) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(topology.ORDERS_QUEUE, ensure=False)
    done = asyncio.Event()
    received = 0
    started = 0.0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received, started
        if received == 0:
            started = time.monotonic()
        received += 1
        if received % batch == 0 or received == n:
            await message.ack(multiple=True)
        if received == n:
            done.set()

    await queue.consume(on_message)
    await done.wait()
    print(f"{(n - 1) / (time.monotonic() - started):.1f}")
    await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--prefetch", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    uvloop.run(main(args.amqp_url, args.n, args.prefetch, args.batch))
