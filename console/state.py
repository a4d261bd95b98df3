"""What the console process holds: its settings, a store, and one broker connection for queue
depths (opened lazily: the console works, with depths unknown, while RabbitMQ is away)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import structlog
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from console.auth import STORE
from core import broker, topology
from core.settings import Settings
from worker.store import Store

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
BROKER = web.AppKey("broker", dict[str, AbstractRobustConnection])
SHOWN_QUEUES = (
    topology.ORDERS_QUEUE,
    topology.ORDERS_DLQ,
    topology.UNHANDLED_QUEUE,
    topology.FULFILLMENT_UNROUTED,
)


async def resources(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the store's pool for the app's life, and the broker connection if opened."""
    # Custom plans: every console search has optional filters (core.database.create_pool).
    async with Store.open(app[SETTINGS].database_url, max_size=4, custom_plans=True) as store:
        app[STORE] = store
        app[BROKER] = {}
        yield
        for connection in app[BROKER].values():
            await connection.close()


async def queue_depths(app: web.Application) -> Mapping[str, int | None]:
    try:
        async with asyncio.timeout(3):
            if "queues" not in app[BROKER]:
                app[BROKER]["queues"] = await broker.connect(
                    app[SETTINGS].amqp_url, "conekta-ingest console", attempts=1
                )
            stats = await broker.queue_stats(app[BROKER]["queues"], SHOWN_QUEUES)
    except Exception as exc:  # the page still renders; the depths show as unknown
        log.warning("queue depths unavailable", error=str(exc))
        return dict.fromkeys(SHOWN_QUEUES)
    return {name: depth for name, (depth, _) in stats.items()}
