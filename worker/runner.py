"""The worker process: wire the database, the broker, the consumers and the outbox relay, each
supervised."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aio_pika.abc import AbstractRobustConnection

from core import backoff, broker, database, health, lifecycle, topology
from core.errors import DatabaseUnavailable, StopRequested, TaskFailing
from core.settings import Settings
from core.supervisor import Supervisor, for_settings
from core.verifier import Verifier
from store import Store, migrations
from worker import metrics, reconcile, settlement
from worker.consumer import Consumer
from worker.dead_letters import DeadLetterConsumer
from worker.failures import FailureRouter
from worker.orders import OrderConsumer
from worker.outbox import OutboxRelay
from worker.unhandled import UnhandledConsumer
from worker.unknown_charge import AskConekta

log = structlog.get_logger(__name__)

WATCHED_QUEUES = (
    topology.ORDERS_QUEUE,
    topology.UNHANDLED_QUEUE,
    topology.DEAD_LETTER_QUEUE,
    topology.PARKED_QUEUE,
    topology.FULFILLMENT_UNROUTED_QUEUE,
)
WATCH_INTERVAL = 5.0
# v1 queues (core.topology.RETIRED_QUEUES) still holding messages: drained by a consumer of the
# same kind as the new queue's. The retired fulfillment.unrouted is left alone: the outbox in
# Postgres keeps every one of its messages.
RETIRED_DRAINED_BY = {"conekta.orders.dlq": "dead-letters", "conekta.unhandled": "unhandled"}


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
    settings: Settings, stop: asyncio.Event
) -> AsyncIterator[tuple[Store, AbstractRobustConnection, broker.Publisher]]:
    """Connections once the database is migrated and the topology declared (waiting for both,
    until `stop`: then StopRequested)."""
    async with contextlib.AsyncExitStack() as opened:
        pool = await lifecycle.unless_stopped(stop, wait_for_database(settings.database_url))
        opened.push_async_callback(lifecycle.quietly, "database pool", pool.close())
        consume_connection = await _connect(settings, stop, "conekta-ingest worker consume")
        opened.push_async_callback(lifecycle.quietly, "broker", consume_connection.close())
        publish_connection = await _connect(settings, stop, "conekta-ingest worker publish")
        publisher = broker.Publisher(publish_connection, settings.publish_timeout)
        opened.push_async_callback(lifecycle.quietly, "publisher", publisher.close())
        await lifecycle.unless_stopped(stop, broker.wait_for_topology(consume_connection))
        yield Store(pool, fee_tax_rate=settings.fee_tax_rate), consume_connection, publisher


async def _connect(settings: Settings, stop: asyncio.Event, name: str) -> AbstractRobustConnection:
    """A broker connection, given up (StopRequested) when asked to stop while no node answers."""
    return await lifecycle.unless_stopped(stop, broker.connect(settings.amqp_url, name))


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    *,
    serve_metrics: bool = True,
    supervisor: Supervisor | None = None,
) -> None:
    """Every long-running part under one supervisor: it restarts what fails (with backoff),
    turns readiness down while something keeps failing, and past its bound stops the worker,
    which then raises TaskFailing (the process exits non-zero)."""
    supervisor = supervisor or for_settings(settings, stop)
    async with contextlib.AsyncExitStack() as resources:
        try:
            store, connection, publisher = await resources.enter_async_context(
                worker_resources(settings, stop)
            )
        except StopRequested:
            log.info("worker stopped while starting")
            return
        relay = OutboxRelay(store, publisher, settings.outbox_interval)
        consumers = _consumers(settings, store, publisher, relay)
        for retired in await topology.existing_retired_queues(connection):
            if retired.name in RETIRED_DRAINED_BY:
                kind = consumers[RETIRED_DRAINED_BY[retired.name]][0]
                consumers[f"retired {retired.name}"] = (kind.fresh(), retired.name)
        for name, (consumer, queue) in consumers.items():
            supervisor.run(
                name, functools.partial(_consume, connection, consumer, queue, settings, stop)
            )
        supervisor.run("outbox", functools.partial(relay.run, stop))
        supervisor.run("queue-watch", functools.partial(_watch_queues, connection, store, stop))
        if settings.fulfillment_subscribers:
            watch = functools.partial(
                _watch_subscribers, connection, settings.fulfillment_subscribers, stop
            )
            supervisor.run("subscriber-watch", watch)
        if settings.conekta_api_key:
            supervisor.run(
                "reconcile",
                functools.partial(reconcile.run_scheduled, store, settings, stop),
            )
            supervisor.run(
                "settle-pull",
                functools.partial(settlement.run_scheduled, store, settings, stop),
            )
        if serve_metrics:
            checks = {
                "database": lambda: all(c.database_ok for c, _ in consumers.values()),
                "broker": lambda: not connection.is_closed,
                "tasks": supervisor.ready,
            }
            supervisor.run("metrics", functools.partial(_serve_metrics, settings, checks, stop))
        await stop.wait()
        await supervisor.wait()
        if supervisor.gave_up is None:
            log.info("consumers stopped; flushing outbox")
            await lifecycle.quietly("outbox flush", asyncio.wait_for(relay.flush(), timeout=10))
    if supervisor.gave_up is not None:
        raise TaskFailing(f"task {supervisor.gave_up!r} kept failing")
    log.info("worker stopped")


def _consumers(
    settings: Settings, store: Store, publisher: broker.Publisher, relay: OutboxRelay
) -> dict[str, tuple[Consumer[Any], str]]:
    """Each consumer by task name, with its queue; retired queues (core.topology) are drained
    by a consumer of the same kind until someone deletes them."""
    # Dead letters of both event consumers go to the one dead-letter queue.
    failures = FailureRouter(
        publisher, topology.ORDERS_QUEUE, settings.max_attempts, store.in_flight
    )
    size, wait = settings.batch_size, settings.batch_wait
    verifier = Verifier.from_settings(settings)  # both webhook consumers check every DIGEST
    return {
        "orders": (
            OrderConsumer(
                store,
                failures,
                batch_size=size,
                batch_wait=wait,
                verifier=verifier,
                on_commit=relay.wake,
                modes=settings.accept_modes,
                ask=AskConekta(
                    store, settings.conekta_api_url, settings.conekta_api_key, settings.accept_modes
                )
                if settings.conekta_api_key
                else None,
            ),
            topology.ORDERS_QUEUE,
        ),
        "unhandled": (
            UnhandledConsumer(store, failures, batch_size=size, batch_wait=wait, verifier=verifier),
            topology.UNHANDLED_QUEUE,
        ),
        "dead-letters": (
            DeadLetterConsumer(store, batch_size=size, batch_wait=wait),
            topology.DEAD_LETTER_QUEUE,
        ),
    }


async def _consume(
    connection: AbstractRobustConnection,
    consumer: Consumer[Any],
    queue_name: str,
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """The consumer on a channel of its own (one consumer per channel: ack_all relies on it)."""
    channel = await connection.channel()
    try:
        await channel.set_qos(prefetch_count=settings.prefetch)
        queue = await channel.get_queue(queue_name, ensure=False)
        await consumer.run(queue, stop)
    finally:
        await lifecycle.quietly("consumer channel", channel.close())


async def _serve_metrics(settings: Settings, checks: health.Checks, stop: asyncio.Event) -> None:
    runner = await lifecycle.start_site(
        health.create_app(checks), settings.host, settings.worker_metrics_port
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _watch_subscribers(
    connection: AbstractRobustConnection, names: tuple[str, ...], stop: asyncio.Event
) -> None:
    """Each configured fulfillment subscriber's queue (passive declares) as metrics."""
    while not stop.is_set():
        for state in await topology.subscriber_states(connection, names):
            metrics.SUBSCRIBER_QUEUE_EXISTS.labels(state.name).set(int(state.exists))
            metrics.SUBSCRIBER_MESSAGES.labels(state.name).set(state.messages)
            metrics.SUBSCRIBER_CONSUMERS.labels(state.name).set(state.consumers)
            metrics.SUBSCRIBER_DEAD_LETTERS.labels(state.name).set(state.dead_letters or 0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)


async def _watch_queues(
    connection: AbstractRobustConnection, store: Store, stop: asyncio.Event
) -> None:
    """Queue depths, consumer counts, how long each queue has held messages (for a queue nobody
    consumes, the age of its oldest), and the open dead letters, as metrics."""
    last_empty = {name: time.monotonic() for name in WATCHED_QUEUES}
    while not stop.is_set():
        channel = await connection.channel()
        try:
            for name in WATCHED_QUEUES:
                declared = await channel.declare_queue(name, passive=True)
                result = declared.declaration_result
                depth = result.message_count or 0
                now = time.monotonic()
                last_empty[name] = now if depth == 0 else last_empty[name]
                metrics.QUEUE_DEPTH.labels(name).set(depth)
                metrics.QUEUE_CONSUMERS.labels(name).set(result.consumer_count or 0)
                metrics.QUEUE_NONEMPTY_SECONDS.labels(name).set(now - last_empty[name])
        finally:
            await lifecycle.quietly("queue-watch channel", channel.close())
        metrics.DEAD_LETTERS_OPEN.set(await store.dead_letters.count())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
