"""Throwaway services for one benchmark run, and the processes under measurement."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg

from core import request, topology
from core.broker import declare_topology
from store import migrations
from testkit import isolation, signing

RUN_ID = uuid.uuid4().hex[:8]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Services:
    """A vhost and a migrated template database; `fresh()` gives a clean pair for one measure."""

    template: str
    made: list[tuple[str, str]] = field(default_factory=list)

    async def fresh(self, label: str) -> tuple[str, str]:
        name = f"conekta_bench_{RUN_ID}_{label}"
        vhost = f"conekta-bench-{RUN_ID}-{label}"
        database_url = await isolation.clone_database(name, self.template)
        amqp_url = await isolation.create_vhost(vhost)
        self.made.append((name, vhost))
        connection = await aio_pika.connect(amqp_url)
        await declare_topology(connection)  # type: ignore[arg-type]
        await connection.close()
        return database_url, amqp_url

    async def release(self) -> None:
        """Drop what `fresh` made so far: a full queue left behind slows the next measure."""
        for name, vhost in self.made:
            await isolation.drop_database(name)
            await isolation.delete_vhost(vhost)
        self.made.clear()

    async def cleanup(self) -> None:
        await self.release()
        await isolation.drop_database(self.template)


@asynccontextmanager
async def services() -> AsyncIterator[Services]:
    template = f"conekta_bench_{RUN_ID}_template"
    await migrations.migrate(isolation.database_url_for(template))
    made = Services(template)
    try:
        yield made
    finally:
        await made.cleanup()


def env_for(database_url: str, amqp_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "CONEKTA_INGEST_LOG_LEVEL": "warning",
        "CONEKTA_INGEST_LOG_FORMAT": "json",
        # the worker verifies every body's DIGEST: the key publish_backlog signs with
        "CONEKTA_WEBHOOK_KEYS": str(signing.key_pair()[1]),
        **extra,
    }


@asynccontextmanager
async def process(*args: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used, from /proc."""
    return _stat_cpu(Path(f"/proc/{pid}/stat").read_text())


def _stat_cpu(stat: str) -> float:
    """User + system CPU seconds in a /proc/<pid>/stat line."""
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_of(command: str) -> float:
    """User + system CPU time of every live process running `command` (e.g. postgres: each
    connection's backend), from /proc."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        if text[text.find("(") + 1 : text.rfind(")")] == command:
            total += _stat_cpu(text)
    return total


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], seconds: float, what: str, interval: float = 0.02
) -> float:
    """Poll until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic()


async def archived(database_url: str) -> Callable[[], Awaitable[int]]:
    """How many events are archived. Counted in event_ids (written in the archive's statement,
    one narrow row per event): a count of `events`, whose rows hold the bodies, took 3.3 ms at
    20,000 events, 50 times a second, a sixth of a core taken from the processes measured."""
    connection = await asyncpg.connect(database_url)

    async def count() -> int:
        value: int = await connection.fetchval("SELECT count(*) FROM event_ids")
        return value

    return count


async def publish_backlog(
    amqp_url: str, bodies: list[bytes], types: list[str], ids: list[str]
) -> None:
    """Fill the work queue as the receiver would, with confirms, in chunks (with the headers the
    receiver sets: the worker archives the request they describe, and verifies the DIGEST in it:
    each body is signed with testkit's key first, ~1 ms each, before anything is timed)."""
    signed = [receiver_headers(signing.digest(body)) for body in bodies]
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(topology.EVENTS_EXCHANGE)
    for start in range(0, len(bodies), 1000):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        bodies[i],
                        message_id=ids[i],
                        type=types[i],
                        headers=signed[i],
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    types[i],
                )
                for i in range(start, min(start + 1000, len(bodies)))
            )
        )
    await connection.close()


def receiver_headers(digest: str = "x" * 344) -> dict[str, Any]:
    """What the receiver sets on a typical webhook (its headers as Conekta sends them)."""
    seen = [
        ("Host", "webhooks.example.com"),
        ("User-Agent", "Conekta/v2 RubyBindings/2.0"),
        ("Content-Type", "application/json"),
        ("Content-Length", "2345"),
        ("Accept", "application/vnd.conekta-v2.1.0+json"),
        ("Accept-Encoding", "gzip;q=1.0,deflate;q=0.6,identity;q=0.3"),
        ("Digest", digest),  # a base64 RSA-2048 signature: 344 characters
        ("X-Forwarded-For", "52.200.151.182"),
        ("X-Request-Id", str(uuid.uuid4())),
    ]
    return {
        "received_at": datetime.now(UTC).isoformat(),
        request.HEADER: request.encode(request.select("10.0.0.7", seen)),
    }


async def lock_waits(database_url: str) -> Callable[[], Awaitable[int]]:
    """How many lock requests wait in that database right now."""
    connection = await asyncpg.connect(database_url)

    async def count() -> int:
        value: int = await connection.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE NOT l.granted AND d.datname = current_database()"
        )
        return value

    return count


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
