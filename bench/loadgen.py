"""The load generator: signs like Conekta (ahead of time) and posts, closed- or open-loop.

It runs in the benchmark's own process, never in the process being measured, and shares the two
cores with everything it measures: it speaks HTTP/1.1 itself over keep-alive connections (a
request written whole, the status line and Content-Length read back), at about a third of the CPU
per request an aiohttp client took (34 % of a core at 1,000 requests/s, taken from the receiver,
worker, broker and database under test).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from core import signature

# What a connection that failed mid-request raises.
_BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


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


class _Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def post(self, request: bytes) -> tuple[int, bool]:
        """The response's status, and whether the connection may be used again."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status, length, keep = int(head[9:12]), 0, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                keep = value.strip().lower() != b"close"
        await self._reader.readexactly(length)
        return status, keep

    def close(self) -> None:
        self._writer.close()


class _Client:
    """At most `limit` connections to one URL, kept open between requests."""

    def __init__(self, url: str, limit: int) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        # The headers Conekta's webhooks carry (the receiver keeps a selection for the archive).
        self._head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "User-Agent: Conekta/v2 RubyBindings/2.0\r\n"
            "Accept: application/vnd.conekta-v2.1.0+json\r\n"
            "Accept-Encoding: gzip;q=1.0,deflate;q=0.6,identity;q=0.3\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []

    def request(self, item: Signed) -> bytes:
        head = f"DIGEST: {item.digest}\r\nContent-Length: {len(item.body)}\r\n\r\n".encode()
        return self._head + head + item.body

    async def post(self, item: Signed) -> int:
        async with self._slots:
            if self._idle:
                connection = self._idle.pop()
            else:
                connection = _Connection(*await asyncio.open_connection(self._host, self._port))
            try:
                status, keep = await connection.post(self.request(item))
            except BaseException:
                connection.close()
                raise
            if keep:
                self._idle.append(connection)
            else:
                connection.close()
            return status

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


async def _post(client: _Client, item: Signed, result: LoadResult) -> None:
    started = time.perf_counter()
    result.sent_at[item.event_id] = time.time()
    try:
        ok = await client.post(item) == 200
    except _BROKEN:
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
    client = _Client(url, concurrency)

    async def one_client() -> None:
        for item in source:
            if time.monotonic() > deadline:
                return
            await _post(client, item, result)

    started = time.monotonic()
    try:
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    finally:
        client.close()
    result.elapsed = time.monotonic() - started
    return result


async def open_loop(url: str, items: Sequence[Signed], rate: float) -> LoadResult:
    """One request every 1/rate seconds whatever the answers' speed (as webhooks arrive)."""
    result = LoadResult()
    client = _Client(url, 1000)
    started = time.monotonic()
    tasks = []
    try:
        for n, item in enumerate(items):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(client, item, result)))
        await asyncio.gather(*tasks)
    finally:
        client.close()
    result.elapsed = time.monotonic() - started
    return result
