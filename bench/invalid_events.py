"""How long on-call waits on the invalid-events page's actions with a large backlog.

    python -m bench.invalid_events [--n 10000]

Archives N `invalid` events (order.paid bodies refused by a rule since "fixed", as after a schema
change) in a scratch database (dropped after), then times the console's actions through the
same worker functions: the first page of the list, the dry-run preview (every body judged again
in memory), the replay (each applied in pages of 256), and a purge of the same number.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ops import actions, invalid
from store import Store
from testkit import isolation, signing
from testkit.events import order_event
from worker import judge


async def main(n: int) -> None:
    async with isolation.scratch_database("invalid") as url, Store.open(url) as store:
        print(await measure(store, n))


async def archive_invalid(store: Store, n: int, prefix: str) -> None:
    for start in range(0, n, 256):
        rows = [
            judge.invalid_row(
                body, None, "data.object.customer_info: required", signing.signed_request(body)
            )
            for body in (
                order_event("order.paid", f"{prefix}{i}", customer_id=f"cus_{i % 500}")
                for i in range(start, min(start + 256, n))
            )
        ]
        await store.events.archive(rows)


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def measure(store: Store, n: int) -> str:
    everything = actions.Selection(everything=True)
    await archive_invalid(store, n, "ord_r")
    listed = await timed(lambda: invalid.listing(store, limit=50))
    previewed = await timed(lambda: invalid.preview(store, "replay", everything))
    # Each body's DIGEST is verified again (RSA-2048): part of the replay's cost
    verifier = signing.verifier()
    replayed = await timed(lambda: invalid.replay(store, everything, "bench", verifier=verifier))
    await archive_invalid(store, n, "ord_p")
    purged = await timed(lambda: invalid.purge(store, everything, "bench", reason="bench"))
    return (
        f"{n} invalid events: first page {listed * 1000:.0f} ms; preview {previewed:.2f} s "
        f"({n / previewed:.0f}/s); replay {replayed:.2f} s ({n / replayed:.0f}/s); "
        f"purge {purged:.2f} s ({n / purged:.0f}/s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().n))
