"""Real PostgreSQL, RabbitMQ and HTTP, isolated cheaply.

Each run migrates one template database; each test gets its own database cloned from it and its
own RabbitMQ vhost, so tests and concurrent runs never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest
from aiohttp import web

from ingest import receiver, signature, topology
from ingest.broker import declare_topology
from ingest.config import Settings
from tests.isolation import (
    clone_database,
    create_vhost,
    database_url_for,
    delete_vhost,
    drop_database,
)
from tests.support import wait_for
from worker import migrations
from worker.runner import run_worker

RUN_ID = uuid.uuid4().hex[:8]
_counter = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
async def template_database() -> AsyncIterator[str]:
    name = f"conekta_test_{RUN_ID}_template"
    await migrations.migrate(database_url_for(name))
    yield name
    await drop_database(name)


@pytest.fixture
async def database_url(template_database: str) -> AsyncIterator[str]:
    name = f"conekta_test_{RUN_ID}_{next(_counter)}"
    yield await clone_database(name, template_database)
    await drop_database(name)


@pytest.fixture
async def amqp_url() -> AsyncIterator[str]:
    vhost = f"conekta-test-{RUN_ID}-{next(_counter)}"
    yield await create_vhost(vhost)
    await delete_vhost(vhost)


@pytest.fixture(scope="session")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return signature.generate_key_pair(tmp_path_factory.mktemp("keys"), "test")


@pytest.fixture
def settings(database_url: str, amqp_url: str, key_pair: tuple[Path, Path]) -> Settings:
    return Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        webhook_keys=(key_pair[1],),
        port=free_port(),
        worker_metrics_port=free_port(),
        batch_wait=0.01,
        outbox_interval=0.2,
        publish_timeout=3.0,
    )


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    """A connection to the test vhost with the topology declared."""
    connection = await aio_pika.connect_robust(settings.amqp_url)
    await declare_topology(connection)
    yield connection
    await connection.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


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
async def running_worker(settings: Settings) -> AsyncIterator[asyncio.Event]:
    """The worker in this process until the block ends (SIGTERM-like stop)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop, serve_metrics=False))
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
    connection: aio_pika.abc.AbstractRobustConnection, exchange: str, routing_key: str = "#"
) -> str:
    """A queue bound to `exchange`, to see what is published there."""
    channel = await connection.channel()
    queue = await channel.declare_queue(f"probe.{exchange}.{uuid.uuid4().hex[:6]}", durable=True)
    await queue.bind(exchange, routing_key)
    await channel.close()
    return queue.name


__all__ = ["bind_probe", "drain", "running_receiver", "running_worker", "topology"]


async def publish_events(
    connection: aio_pika.abc.AbstractRobustConnection, bodies: list[bytes]
) -> None:
    """Publish as the receiver does (persistent, confirmed, routed by type), without HTTP."""
    import orjson

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
                ),
                document["type"],
            )
            for body, document in ((b, orjson.loads(b)) for b in bodies)
        )
    )
    await channel.close()


async def count(connection: asyncpg.Connection[Any], sql: str, *args: Any) -> int:
    value: int = await connection.fetchval(sql, *args)
    return value


async def balances(connection: asyncpg.Connection[Any]) -> dict[str, int]:
    rows = await connection.fetch(
        "SELECT account, CASE WHEN normal_side = 'credit' THEN -balance ELSE balance END AS b "
        "FROM balances"
    )
    return {r["account"]: r["b"] for r in rows}
