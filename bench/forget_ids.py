"""How fast `archive prune` forgets old event ids, and what building their index costs.

    python -m bench.forget_ids [--n 1000000]

In a scratch database (dropped after): N ids archived in January 2023 with their rows pruned,
the index of migration 0013 built again (its cost on an existing table), then
`retention.forget_ids` times forgetting them all.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import date

import asyncpg

from ops import retention
from store import Store
from testkit import isolation


async def main(n: int) -> None:
    async with isolation.scratch_database("forget") as url:
        print(await measure(url, n))


async def measure(url: str, n: int) -> str:
    db = await asyncpg.connect(url)
    try:
        await db.execute(
            "INSERT INTO event_ids (event_id, archived_at) SELECT md5(g::text),"
            " timestamptz '2023-01-01' + g * interval '1 second' FROM generate_series(1, $1) g",
            n,
        )
        await db.execute("ANALYZE event_ids")
        await db.execute("DROP INDEX event_ids_archived_at_idx")
        started = time.perf_counter()
        await db.execute("CREATE INDEX event_ids_archived_at_idx ON event_ids (archived_at)")
        built = time.perf_counter() - started
    finally:
        await db.close()
    async with Store.open(url) as store:
        started = time.perf_counter()
        forgotten = await retention.forget_ids(store, date(2024, 1, 1))
        took = time.perf_counter() - started
    return (
        f"{n} ids: index build {built:.2f} s; forgot {forgotten} in {took:.2f} s "
        f"({forgotten / took:.0f}/s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().n))
