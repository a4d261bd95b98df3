"""The floor of the worker's whole job, with no parsing and no logic.

Consume the orders queue in batches; check each body's DIGEST against Conekta's key (the worker
must: nothing moves money unless Conekta signed it, ~30-60 us of RSA per body, part of the job
since issue 24); per batch, one transaction that archives the raw bodies,
upserts aggregated balances and writes an outbox row per event; one `multiple` ack; then publish
the outbox rows with confirms (the project's Publisher, as the relay does) and mark them sent.
Whatever the real worker does beyond this (decoding, planning, order locks, postings) is its cost.

    python -m bench.worker_floor --amqp-url URL --database-url URL --n N

Prints "events/s cpu_us_per_event" measured from the first delivery to the last mark-sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

import aio_pika
import asyncpg
import orjson
import uvloop

from core import broker, topology
from core.settings import load_settings
from core.verifier import Verifier

# As the store archives: the id into event_ids (the dedupe key), then the body (with the webhook's
# request, as the receiver passed it) if the id was new.
ARCHIVE = """
WITH e AS (
    SELECT DISTINCT ON (id) *
    FROM unnest($1::text[], $2::text[], $3::bytea[], $4::jsonb[]) AS e (id, type, body, request)
),
new_ids AS (
    INSERT INTO event_ids (event_id) SELECT id FROM e ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, archived_at
)
INSERT INTO events (event_id, type, order_id, livemode, created_at, received_at, outcome, body,
                    request, applied_at)
SELECT id, type, NULL, false, now(), now(), 'applied', body, request, archived_at
FROM e JOIN new_ids ON new_ids.event_id = e.id
"""
# Balances name declared accounts (0015): the floor's two, declared once.
ACCOUNTS = """
INSERT INTO accounts (name, type, normal_side)
VALUES ('floor:receivable', 'asset', 'debit'), ('floor:customers', 'revenue', 'credit')
ON CONFLICT (name) DO NOTHING
"""
BALANCES = """
INSERT INTO balances (account, currency, livemode, balance)
VALUES ('floor:receivable', 'MXN', true, $1),
       ('floor:customers', 'MXN', true, -$1)
ON CONFLICT (account, currency, livemode)
DO UPDATE SET balance = balances.balance + EXCLUDED.balance
"""
OUTBOX = """
INSERT INTO outbox (message_id, routing_key, body)
SELECT 'floor_' || id, type, body
FROM unnest($1::text[], $2::text[], $3::bytea[]) AS e (id, type, body)
RETURNING id, message_id, routing_key, body
"""
MARK_SENT = "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"


def _text(value: object) -> str | None:
    return value.decode() if isinstance(value, bytes) else value if isinstance(value, str) else None


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(amqp_url: str, database_url: str, n: int, prefetch: int, batch: int) -> None:
    verifier = Verifier.from_settings(load_settings(os.environ))  # CONEKTA_WEBHOOK_KEYS
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
    assert pool is not None
    await pool.execute(ACCOUNTS)
    connection = await aio_pika.connect(amqp_url)
    publisher = broker.Publisher(await broker.connect(amqp_url, "floor publish"), 10.0)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(topology.ORDERS_QUEUE, ensure=False)
    inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await queue.consume(inbox.put)
    done, started, cpu_started = 0, 0.0, 0.0
    while done < n:
        messages = [await inbox.get()]
        if done == 0:
            started, cpu_started = time.monotonic(), _cpu_seconds()
        while len(messages) < batch and not inbox.empty():
            messages.append(inbox.get_nowait())
        ids = [m.message_id or "" for m in messages]
        types = [m.type or "" for m in messages]
        bodies = [m.body for m in messages]
        requests = [_text(m.headers.get("request")) for m in messages]  # the receiver's JSON
        for body, request in zip(bodies, requests, strict=True):
            if verifier.reason(body, orjson.loads(request) if request else None) is not None:
                raise SystemExit(f"floor: a body's DIGEST does not verify: {body[:80]!r}")
        async with pool.acquire() as db, db.transaction():
            await db.execute(ARCHIVE, ids, types, bodies, requests)
            await db.execute(BALANCES, len(messages))
            rows = await db.fetch(OUTBOX, ids, types, bodies)
        await messages[-1].ack(multiple=True)
        await asyncio.gather(
            *(
                publisher.publish(
                    topology.FULFILLMENT_EXCHANGE,
                    r["routing_key"],
                    r["body"],
                    message_id=r["message_id"],
                    message_type=r["routing_key"],
                )
                for r in rows
            )
        )
        async with pool.acquire() as db:
            await db.execute(MARK_SENT, [r["id"] for r in rows])
        done += len(messages)
    elapsed, cpu = time.monotonic() - started, _cpu_seconds() - cpu_started
    print(f"{n / elapsed:.1f} {cpu / n * 1e6:.1f}")
    await publisher.close()
    await connection.close()
    await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--prefetch", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    uvloop.run(main(args.amqp_url, args.database_url, args.n, args.prefetch, args.batch))
