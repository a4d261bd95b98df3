"""What a month of the archive costs on disk, and how fast `archive prune` exports and verifies.

    python -m bench.retention_size [--n 20000]

Applies N synthetic order.paid events through the store (a scratch database, dropped after),
then prints bytes per event of the month's archive partition, of event_ids (kept for good) and
of the outbox, the export's compressed bytes per event, and export / verify rows per second.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import retention
from store import Store
from testkit import isolation
from testkit.events import order_event


async def main(n: int) -> None:
    async with isolation.scratch_database("retention") as url, Store.open(url) as store:
        print(await measure(store, n))


async def measure(store: Store, n: int) -> str:
    bodies = [order_event("order.paid", f"ord_{i}", customer_id=f"cus_{i % 500}") for i in range(n)]
    for start in range(0, n, 256):
        batch = bodies[start : start + 256]
        await store.apply.batch([Incoming(parse_order_event(b), b, None) for b in batch])
    month = retention.utc_today().replace(day=1)
    async with store.pool.acquire() as connection:
        await connection.execute("VACUUM ANALYZE")
        size = {
            table: await connection.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
            for table in (f"events_{month:%Y_%m}", "event_ids", f"outbox_{month:%Y_%m}")
        }
    rows, checksum = await store.retention.month_summary("events", month)
    started = time.perf_counter()
    key = "bench-export-key-" + "0" * 32  # signing is one HMAC of the sha256: not measured apart
    path = await retention.export_month(store, "events", month, Path(tempfile.mkdtemp()), key)
    exported = time.perf_counter() - started
    started = time.perf_counter()
    retention.verify_export(path, rows, checksum)
    verified = time.perf_counter() - started
    per_event = ", ".join(f"{table} {value / n:.0f} B" for table, value in size.items())
    return (
        f"{n} events, body {sum(map(len, bodies)) / n:.0f} B; per event: {per_event}; "
        f"export {path.stat().st_size / n:.0f} B gzip; "
        f"export {n / exported:.0f} rows/s, verify {n / verified:.0f} rows/s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().n))
