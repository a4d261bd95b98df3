"""The worker process: wire the database, the broker, both consumers and the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from core import backoff, broker, database, health, lifecycle, topology
from core.errors import DatabaseUnavailable
from core.settings import Settings
from worker import metrics, migrations, reconcile
from worker.failures import FailureRouter
from worker.orders import OrderConsumer
from worker.outbox import OutboxRelay
from worker.store import Store
from worker.unhandled import ArchiveConsumer

log = structlog.get_logger(__name__)

WATCHED_QUEUES = (
    topology.ORDERS_QUEUE,
    topology.ORDERS_DLQ,
    topology.UNHANDLED_QUEUE,
    topology.FULFILLMENT_UNROUTED,
)
WATCH_INTERVAL = 5.0


async def wait_for_database(url: str) -> database.Pool:
    """Connect, waiting (and saying so) while the database is unreachable or not yet migrated:
    applying events to a schema that is not there would dead-letter them for nothing."""
    attempt = 0
    while True:
        attempt += 1
        try:
            pool = await database.create_pool(url, max_size=4)
        except DatabaseUnavailable as exc:
            log.warning("database connect failed", attempt=attempt, error=str(exc))
            await asyncio.sleep(backoff.delay(attempt, base=1.0, cap=10.0))
            continue
        missing = await migrations.pending(pool)
        if not missing:
            return pool
        await pool.close()
        log.warning("waiting for migrations (run `conekta-ingest migrate`)", pending=missing)
        await asyncio.sleep(backoff.delay(attempt, base=1.0, cap=10.0))


@contextlib.asynccontextmanager
async def worker_resources(
    settings: Settings,
) -> AsyncIterator[tuple[Store, AbstractRobustConnection, broker.Publisher]]:
    pool = await wait_for_database(settings.database_url)
    consume_connection = await broker.connect(settings.amqp_url, "conekta-ingest worker consume")
    publish_connection = await broker.connect(settings.amqp_url, "conekta-ingest worker publish")
    publisher = broker.Publisher(publish_connection, settings.publish_timeout)
    try:
        await broker.declare_topology(consume_connection)
        yield Store(pool), consume_connection, publisher
    finally:
        await publisher.close()
        await consume_connection.close()
        await pool.close()


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, serve_metrics: bool = True
) -> None:
    async with worker_resources(settings) as (store, connection, publisher):
        relay = OutboxRelay(store, publisher, settings.outbox_interval)
        # Dead letters of both consumers go to the one DLQ on-call watches.
        failures = FailureRouter(publisher, topology.ORDERS_QUEUE, settings.max_attempts)
        size, wait = settings.batch_size, settings.batch_wait
        orders = OrderConsumer(
            store, failures, batch_size=size, batch_wait=wait, on_commit=relay.wake
        )
        unhandled = ArchiveConsumer(store, failures, batch_size=size, batch_wait=wait)
        tasks = [
            asyncio.create_task(relay.run(stop), name="outbox"),
            asyncio.create_task(_watch_queues(connection, stop), name="queue-watch"),
        ]
        if settings.conekta_api_key:
            tasks.append(
                asyncio.create_task(
                    reconcile.run_scheduled(store, publisher, settings, stop), name="reconcile"
                )
            )
        checks = {
            "database": lambda: orders.database_ok and unhandled.database_ok,
            "broker": lambda: not connection.is_closed,
        }
        runner = (
            await lifecycle.start_site(
                health.create_app(checks), settings.host, settings.worker_metrics_port
            )
            if serve_metrics
            else None
        )
        try:
            # Either consumer failing stops the worker (loudly) rather than leaving it half alive.
            await asyncio.gather(
                orders.run(await _queue(connection, topology.ORDERS_QUEUE, settings), stop),
                unhandled.run(await _queue(connection, topology.UNHANDLED_QUEUE, settings), stop),
            )
            log.info("consumers stopped; flushing outbox")
            await asyncio.wait_for(relay.flush(), timeout=10)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if runner is not None:
                await runner.cleanup()
    log.info("worker stopped")


async def _queue(
    connection: AbstractRobustConnection, name: str, settings: Settings
) -> AbstractQueue:
    """The queue on a channel of its own: one consumer per channel (ack_all relies on it)."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=settings.prefetch)
    return await channel.get_queue(name, ensure=False)


async def _watch_queues(connection: AbstractRobustConnection, stop: asyncio.Event) -> None:
    """Queue depths and consumer counts as metrics (consumer lag, dead letters)."""
    while not stop.is_set():
        try:
            for name, (depth, consumers) in (
                await broker.queue_stats(connection, WATCHED_QUEUES)
            ).items():
                metrics.QUEUE_DEPTH.labels(name).set(depth)
                metrics.QUEUE_CONSUMERS.labels(name).set(consumers)
        except Exception as exc:
            log.warning("queue watch failed", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
