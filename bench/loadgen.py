"""The load generator: signs like Conekta (ahead of time) and posts, closed- or open-loop.

It runs in the benchmark's own process, never in the process being measured.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from core import signature


@dataclass(frozen=True)
class Signed:
    event_id: str
    body: bytes
    digest: str


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, answered 200
    failures: int = 0
    elapsed: float = 0.0
    sent_at: dict[str, float] = field(default_factory=dict)  # event id -> wall clock

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def sign_all(bodies: Sequence[bytes], key: rsa.RSAPrivateKey) -> list[Signed]:
    return [Signed(orjson.loads(b)["id"], b, signature.sign(b, key)) for b in bodies]


async def _post(session: aiohttp.ClientSession, url: str, item: Signed, result: LoadResult) -> None:
    started = time.perf_counter()
    result.sent_at[item.event_id] = time.time()
    headers = {"Content-Type": "application/json", "DIGEST": item.digest}
    try:
        async with session.post(url, data=item.body, headers=headers) as response:
            await response.read()
            ok = response.status == 200
    except aiohttp.ClientError:
        ok = False
    if ok:
        result.latencies.append(time.perf_counter() - started)
    else:
        result.failures += 1


async def closed_loop(
    url: str, items: Sequence[Signed], concurrency: int, seconds: float | None = None
) -> LoadResult:
    """`concurrency` clients back to back: every item once, or cycling for `seconds`."""
    result = LoadResult()
    source: Iterator[Signed] = itertools.cycle(items) if seconds else iter(items)
    deadline = time.monotonic() + seconds if seconds else float("inf")
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for item in source:
                if time.monotonic() > deadline:
                    return
                await _post(session, url, item, result)

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        result.elapsed = time.monotonic() - started
    return result


async def open_loop(url: str, items: Sequence[Signed], rate: float) -> LoadResult:
    """One request every 1/rate seconds whatever the answers' speed (as webhooks arrive)."""
    result = LoadResult()
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        tasks = []
        for n, item in enumerate(items):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(session, url, item, result)))
        await asyncio.gather(*tasks)
        result.elapsed = time.monotonic() - started
    return result
