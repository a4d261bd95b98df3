"""The database's share of the worker: apply pre-decoded batches with no broker at all.

    python -m bench.apply_only [--events N] [--batch B] [--mixed]

Prints events/s and the time per event of each statement of the batch transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench import events, stack
from core import database
from domain.order_event import parse_order_event
from domain.plan import Incoming
from store import Store, sql

TIMES: dict[str, float] = {}


def _timed(function: Any) -> Any:
    async def run(connection: database.Connection, name: str, **params: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(connection, name, **params)
        finally:
            TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - started

    return run


async def main(n: int, batch: int, mixed: bool = False) -> None:
    sql.fetch, sql.execute = _timed(sql.fetch), _timed(sql.execute)
    async with stack.services() as services:
        database_url, _ = await services.fresh("apply")
        pool = await database.create_pool(database_url)
        target = Store(pool)
        build = events.mixed_events if mixed else events.paid_events
        bodies, _, _ = build(n, "a")
        items = [Incoming(parse_order_event(b), b, None) for b in bodies]
        started = time.perf_counter()
        for start in range(0, n, batch):
            await target.apply.batch(items[start : start + batch])
        elapsed = time.perf_counter() - started
        await pool.close()
    kind = "mixed" if mixed else "paid"
    print(f"applied {n} {kind} events in batches of {batch}: {n / elapsed:,.0f} events/s")
    for name, seconds in sorted(TIMES.items(), key=lambda kv: -kv[1]):
        print(f"  {name:30} {seconds / n * 1e6:7.1f} us/event")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10240)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument(
        "--mixed", action="store_true", help="refunds and chargebacks among the payments"
    )
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batch, args.mixed))
