"""Slow uploads (issue 10, finding 3): 300 clients trickling 1 MB bodies grew the receiver from
70 MB to 568 MB before any signature was checked. Bodies are now read in a bounded number of
slots within a deadline; this measures the receiver's peak RSS growth in a process of its own."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import aiohttp
from prometheus_client import REGISTRY

from core.settings import Settings
from testkit.services import running_receiver
from testkit.wait import wait_for

CLIENTS = 300
BODY_BYTES = 1_000_000
CHUNK = 32 * 1024
CHUNK_INTERVAL = 0.15  # about 5 s per body: slow, but within the 10 s read deadline
MAX_GROWTH_MB = 100


@asynccontextmanager
async def receiver_process(settings: Settings, public_key: Path) -> AsyncIterator[int]:
    env = {
        **os.environ,
        "AMQP_URL": settings.amqp_url,
        "CONEKTA_WEBHOOK_KEYS": str(public_key),
        "CONEKTA_INGEST_PORT": str(settings.port),
        "CONEKTA_INGEST_LOG_LEVEL": "error",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "serve", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        yield process.pid
    finally:
        process.terminate()
        await process.wait()


def memory_kb(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (the peak so far) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def request_head(body_bytes: int) -> bytes:
    """A webhook POST's request line and headers (its DIGEST is not a signature)."""
    return (
        "POST /webhooks/conekta HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {body_bytes}\r\nDIGEST: not-a-signature\r\n\r\n"
    ).encode()


async def trickle(port: int, body_bytes: int = BODY_BYTES, stop_after: int | None = None) -> int:
    """POST a body in small, spaced chunks (or stall after `stop_after` bytes); the answer's
    status (0: connection closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head(body_bytes))
    try:
        sent, limit = 0, min(body_bytes, stop_after or body_bytes)
        while sent < limit:
            size = min(CHUNK, limit - sent)
            writer.write(b" " * size)
            await writer.drain()
            sent += size
            await asyncio.sleep(CHUNK_INTERVAL)
        status_line = await reader.readline()
    except (ConnectionError, OSError):
        return 0
    finally:
        writer.close()
    return int(status_line.split()[1]) if status_line else 0


async def post_whole(port: int, body: bytes) -> int:
    """POST a body in the same write as its headers; the answer's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head(len(body)) + body)
    try:
        status_line = await reader.readline()
    finally:
        writer.close()
    return int(status_line.split()[1]) if status_line else 0


async def test_300_slow_uploads_grow_the_receiver_by_less_than_100_mb(
    settings: Settings, broker: object, key_pair: tuple[Path, Path]
) -> None:
    base = f"http://127.0.0.1:{settings.port}"
    async with receiver_process(settings, key_pair[1]) as pid, aiohttp.ClientSession() as session:

        async def ready() -> bool:
            try:
                async with session.get(f"{base}/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(ready, timeout=30, what="receiver ready")
        before = memory_kb(pid, "VmRSS")
        uploads = asyncio.gather(*(trickle(settings.port) for _ in range(CLIENTS)))
        slowest_ready = 0.0
        while not uploads.done():
            started = time.perf_counter()
            assert await ready()
            slowest_ready = max(slowest_ready, time.perf_counter() - started)
            await asyncio.sleep(0.2)
        statuses = await uploads
        growth_mb = (memory_kb(pid, "VmHWM") - before) / 1024
    print(
        f"\nslow uploads: peak RSS growth {growth_mb:.1f} MB, slowest /readyz {slowest_ready:.3f} s"
    )
    print(f"statuses: { {s: statuses.count(s) for s in set(statuses)} }")
    assert set(statuses) <= {401, 503, 408}  # read then refused, or turned away while busy
    assert statuses.count(401) >= 64
    assert growth_mb < MAX_GROWTH_MB
    assert slowest_ready < 1.0


async def test_a_body_too_slow_is_408_and_a_request_waiting_too_long_for_a_slot_is_503(
    settings: Settings, broker: object
) -> None:
    """One slot, 1 s deadlines: A stalls in the slot (408 at 1 s); B, queued behind it, gets the
    slot then and stalls too (408 at 2 s); C, queued behind both, gives up waiting (503). A body
    that arrived whole with its headers needs no slot: it is judged at once (401, unsigned)."""
    strict = replace(settings, max_concurrent_reads=1, body_read_timeout=1.0)
    async with running_receiver(strict):

        async def in_flight(n: int) -> bool:
            return (REGISTRY.get_sample_value("conekta_ingest_requests_in_flight") or 0) >= n

        first = asyncio.create_task(trickle(strict.port, 10_000, stop_after=100))
        await wait_for(lambda: in_flight(1), what="the first upload to be read")
        second = asyncio.create_task(trickle(strict.port, 10_000, stop_after=100))
        await wait_for(lambda: in_flight(2), what="the second upload to wait")
        whole = await post_whole(strict.port, b"{}")
        third = await trickle(strict.port, 10_000, stop_after=100)
        assert (await first, await second, third, whole) == (408, 408, 503, 401)
