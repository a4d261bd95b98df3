"""Real services for tests and benchmarks: a receiver or worker in this process, queue probes,
and small reads of the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import orjson
from aiohttp import web

from console import users
from console.app import create_app as create_console
from core import lifecycle, topology
from core.settings import Settings
from core.supervisor import Supervisor
from ingest import receiver
from store import Store
from testkit import signing
from testkit.wait import wait_for
from worker import dead_letters, failures
from worker.runner import run_worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_receiver(settings: Settings, *, wait_ready: bool = True) -> AsyncIterator[str]:
    """The receiver on a real port; yields its webhook URL."""
    runner = web.AppRunner(receiver.create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    base = f"http://{settings.host}:{settings.port}"
    try:
        if wait_ready:
            async with aiohttp.ClientSession() as session:

                async def ready() -> bool:
                    async with session.get(f"{base}/readyz") as response:
                        return response.status == 200

                await wait_for(ready, what="receiver ready")
        yield base + receiver.WEBHOOK_PATH
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, supervisor: Supervisor | None = None
) -> AsyncIterator[asyncio.Event]:
    """The worker in this process until the block ends (SIGTERM-like stop); `supervisor` (made
    on the yielded stop event) lets a test watch its tasks."""
    stop = supervisor.stop if supervisor else asyncio.Event()
    task = asyncio.create_task(
        run_worker(settings, stop, serve_metrics=False, supervisor=supervisor)
    )
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def drain(channel: aio_pika.abc.AbstractChannel, queue_name: str) -> list[Any]:
    """Every message now in a queue (acked, so removed)."""
    queue = await channel.get_queue(queue_name, ensure=False)
    messages = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        messages.append(message)
    return messages


async def bind_probe(
    connection: aio_pika.abc.AbstractRobustConnection,
    exchange: str,
    routing_key: str = "#",
    *,
    quorum: bool = False,
) -> str:
    """A queue bound to `exchange`, to see what is published there (quorum: on a cluster, it
    survives the loss of a node as a real consumer's queue would)."""
    channel = await connection.channel()
    queue = await channel.declare_queue(
        f"probe.{exchange}.{uuid.uuid4().hex[:6]}",
        durable=True,
        arguments={"x-queue-type": "quorum"} if quorum else None,
    )
    await queue.bind(exchange, routing_key)
    await channel.close()
    return queue.name


async def publish_events(
    connection: aio_pika.abc.AbstractRobustConnection, bodies: list[bytes], *, signed: bool = True
) -> None:
    """Publish as the receiver does (persistent, confirmed, routed by type, the request with
    Conekta's DIGEST made with testkit.signing's key), without HTTP."""
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(topology.EVENTS_EXCHANGE)
    await asyncio.gather(
        *(
            exchange.publish(
                aio_pika.Message(
                    body,
                    message_id=document["id"],
                    type=document["type"],
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type="application/json",
                    headers=signing.signed_headers(body) if signed else {},
                ),
                document["type"],
            )
            for body, document in ((b, orjson.loads(b)) for b in bodies)
        )
    )
    await channel.close()


VIEWER = ("vera", "viewer-password-1")  # the console's test users: (name, password)
OPERATOR = ("oscar", "operator-password-1")


def basic(user: tuple[str, str]) -> dict[str, str]:
    """HTTP Basic headers for the console's API."""
    return {"Authorization": aiohttp.BasicAuth(*user).encode()}


@contextlib.asynccontextmanager
async def console_with_users(settings: Settings, store: Store) -> AsyncIterator[str]:
    """The console, with VIEWER and OPERATOR added; yields its base URL."""
    await users.add_user(store, VIEWER[0], "viewer", VIEWER[1], "test")
    await users.add_user(store, OPERATOR[0], "operator", OPERATOR[1], "test")
    async with running_console(settings) as url:
        yield url


@contextlib.asynccontextmanager
async def running_console(settings: Settings) -> AsyncIterator[str]:
    """The ops console in this process on a free port; yields its base URL."""
    port = free_port()
    runner = await lifecycle.start_site(create_console(settings), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def put_dead_letter(
    store: Store,
    body: bytes,
    kind: str = "transient",
    reason: str = "simulated: the database refused it",
) -> str:
    """Put an event into the dead-letter table, as the worker does after its last attempt (the
    failure router dead-letters it, the dead-letter consumer stores it). Returns its id."""
    document = orjson.loads(body)
    now = datetime(2026, 11, 27, tzinfo=UTC)
    headers = {
        **signing.signed_headers(body),  # as the receiver published it: the worker re-verifies
        failures.ERROR_KIND: kind,
        failures.ERROR_MESSAGE: reason,
        failures.ATTEMPTS: 8,
        failures.FIRST_FAILED_AT: now.isoformat(),
        failures.LAST_FAILED_AT: now.isoformat(),
        failures.ORIGINAL_ROUTING_KEY: document["type"],
        failures.ORIGINAL_QUEUE: topology.ORDERS_QUEUE,
    }
    row = dead_letters.DeadLetterRow(
        message_id=document["id"],
        type=document["type"],
        order_id=dead_letters.order_id(body),
        kind=kind,
        reason=reason,
        attempts=8,
        first_failed_at=now,
        last_failed_at=now,
        source_queue=topology.ORDERS_QUEUE,
        exchange=topology.EVENTS_EXCHANGE,
        routing_key=document["type"],
        headers=orjson.dumps(headers).decode(),
        body=body,
    )
    await store.dead_letters.insert([row])
    return str(document["id"])


async def count(connection: asyncpg.Connection[Any], sql: str, *args: Any) -> int:
    value: int = await connection.fetchval(sql, *args)
    return value


async def balances(connection: asyncpg.Connection[Any]) -> dict[str, int]:
    rows = await connection.fetch(
        "SELECT b.account, CASE WHEN a.normal_side = 'credit' THEN -b.balance ELSE b.balance END"
        " AS b FROM balances b JOIN accounts a ON a.name = b.account"
    )
    return {r["account"]: r["b"] for r in rows}
