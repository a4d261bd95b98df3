"""What the console process holds: its settings, a store, one broker connection for queue depths
and subscriber queues, and a confirmed publisher for replays (both opened lazily: the console
works, with depths unknown and replay refused, while RabbitMQ is away)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from core import broker, topology
from core.settings import Settings
from core.verifier import Verifier
from ops import fulfillment
from store import Store

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
# Conekta's keys: replays verify each archived body again (worker.provenance)
VERIFIER = web.AppKey("verifier", Verifier)
STORE = web.AppKey("store", Store)
BROKER = web.AppKey("broker", dict[str, AbstractRobustConnection])
PUBLISHER = web.AppKey("publisher", dict[str, broker.Publisher])
_PUBLISHER_LOCK = web.AppKey("publisher_lock", asyncio.Lock)
SHOWN_QUEUES = (
    topology.ORDERS_QUEUE,
    topology.UNHANDLED_QUEUE,
    topology.DEAD_LETTER_QUEUE,  # on their way into the dead_letters table
    topology.PARKED_QUEUE,  # dead letters that could not be stored (alerted)
    topology.FULFILLMENT_UNROUTED_QUEUE,
)


async def resources(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the store's pool for the app's life, and the broker connection if opened."""
    # Custom plans: every console search has optional filters (core.database.create_pool).
    settings = app[SETTINGS]
    async with Store.open(
        settings.database_url, max_size=4, custom_plans=True, fee_tax_rate=settings.fee_tax_rate
    ) as store:
        app[STORE] = store
        app[BROKER], app[PUBLISHER], app[_PUBLISHER_LOCK] = {}, {}, asyncio.Lock()
        yield
        for connection in app[BROKER].values():
            await connection.close()
        for publisher in app[PUBLISHER].values():
            await publisher.close()


async def publisher(app: web.Application) -> broker.Publisher:
    """The console's confirmed publisher (replays publish where the dead letter first went)."""
    async with app[_PUBLISHER_LOCK]:
        if "replay" not in app[PUBLISHER]:
            settings = app[SETTINGS]
            connection = await broker.connect(
                settings.amqp_url, "conekta-ingest console publish", attempts=3
            )
            app[PUBLISHER]["replay"] = broker.Publisher(connection, settings.publish_timeout)
        return app[PUBLISHER]["replay"]


async def broker_connection(app: web.Application) -> AbstractRobustConnection:
    """The console's connection for passive declares (queue depths, subscribers), opened once."""
    if "queues" not in app[BROKER]:
        app[BROKER]["queues"] = await broker.connect(
            app[SETTINGS].amqp_url, "conekta-ingest console", attempts=1
        )
    return app[BROKER]["queues"]


async def subscriber_states(app: web.Application) -> list[dict[str, Any]] | None:
    """Each configured fulfillment subscriber's queue (ops.fulfillment), or None when the broker
    cannot say (the page still renders)."""
    names = app[SETTINGS].fulfillment_subscribers
    if not names:
        return []
    try:
        async with asyncio.timeout(3):
            return await fulfillment.subscribers(await broker_connection(app), names)
    except Exception as exc:
        log.warning("subscriber queues unavailable", error=str(exc))
        return None


async def queue_depths(app: web.Application) -> Mapping[str, int | None]:
    try:
        async with asyncio.timeout(3):
            stats = await broker.queue_stats(await broker_connection(app), SHOWN_QUEUES)
    except Exception as exc:  # the page still renders; the depths show as unknown
        log.warning("queue depths unavailable", error=str(exc))
        return dict.fromkeys(SHOWN_QUEUES)
    return {name: depth for name, (depth, _) in stats.items()}
