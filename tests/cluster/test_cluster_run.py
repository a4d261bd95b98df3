"""`make faults-cluster`: the product on a 3-node RabbitMQ cluster and a PostgreSQL primary with a
streaming standby, all started here on their own ports and temp dirs (testkit.cluster), while the
fault run's Conekta-like stream (duplicates, resends, shuffles) goes on and the cluster loses:

1. the node leading `conekta.orders` (SIGKILL), which then comes back;
2. one node for 30 s, paused (SIGSTOP): the others see it gone, its clients hang until their
   heartbeats give up; then it resumes and heals;
3. the Postgres primary: stopped, and the standby promoted.

The receiver and two workers are given every node (each starting at another one) and both
Postgres hosts with `target_session_attrs=read-write`; nothing else tells them what happened.
Then the fault run's checks, and the figures: accepted, applied, lost, duplicated, the longest
run of 503s and the longest apply stall.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest

from core import topology
from store import Store
from testkit.cluster import PostgresPair, RabbitCluster
from testkit.services import bind_probe, free_port
from testkit.wait import wait_for
from tests.faults.test_fault_run import (
    Plan,
    Tally,
    Worker,
    _all_archived,
    _check,
    _outbox_flushed,
    conekta,
    make_plan,
    receiver_process,
)

ORDERS = 2000  # about 3,300 deliveries
SEND_RATE = 22.0  # so the stream outlasts the faults (about 150 s; the faults take 120 s)
# Clients notice a hung node within about 10 s; reconnect attempts 1 s apart.
CLIENT_QUERY = "?heartbeat=5&reconnect_interval=1"
PARTITION_SECONDS = 30


@dataclass
class Stalls:
    """When the ledger did not move while accepted events waited for it."""

    periods: list[tuple[float, float]] = field(default_factory=list)


async def watch_apply(url: str, tally: Tally, stalls: Stalls, done: asyncio.Event) -> None:
    applied, last, progress = 0, -1, time.monotonic()
    while not done.is_set():
        try:
            connection = await asyncpg.connect(url, timeout=2)
            try:
                applied = await connection.fetchval("SELECT count(*) FROM events", timeout=2)
            finally:
                await connection.close(timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # the database is failing over: the stall goes on
        now = time.monotonic()
        if applied > last or applied >= len(tally.accepted_ids):
            if now - progress > 0.5:
                stalls.periods.append((progress, now))
            progress = now
        last = applied
        await asyncio.sleep(0.25)


async def inject(
    rabbit: RabbitCluster, postgres: PostgresPair, tally: Tally, started: float
) -> None:
    async def step(name: str, fault: Callable[[], Awaitable[None]]) -> None:
        at = time.monotonic() - started
        await fault()
        tally.faults.append(f"{name} (t={at:.0f}s, {time.monotonic() - started - at:.0f}s)")

    async def lose_leader() -> None:
        leader = await rabbit.leader(topology.ORDERS_QUEUE)
        leader.kill()
        await asyncio.sleep(5)
        leader.start()
        await leader.await_startup()
        await rabbit.wait_healthy()

    async def partition() -> None:
        node = await rabbit.leader(topology.ORDERS_QUEUE)
        node.pause()
        await asyncio.sleep(PARTITION_SECONDS)
        node.resume()
        await rabbit.wait_healthy()

    await asyncio.sleep(8)
    await step("kill the orders leader node, restart it", lose_leader)
    await asyncio.sleep(5)
    await step(f"pause the orders leader node {PARTITION_SECONDS}s", partition)
    await asyncio.sleep(5)
    await step("stop the Postgres primary, promote the standby", postgres.failover)


async def test_cluster_run_loses_nothing(key_pair: tuple[Path, Path]) -> None:
    root = Path(tempfile.mkdtemp(prefix="conekta-cluster-"))
    rabbit, postgres = RabbitCluster(root), PostgresPair(root)

    def teardown() -> None:
        rabbit.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(teardown)  # Ctrl-C and errors too; teardown is idempotent

    def terminated(*_: object) -> None:
        teardown()
        os._exit(143)

    previous = signal.signal(signal.SIGTERM, terminated)
    begun = time.monotonic()
    try:
        await asyncio.gather(rabbit.start(), postgres.start())
        print(f"\ncluster up in {time.monotonic() - begun:.0f}s ({root})")
        await _run(rabbit, postgres, key_pair, root)
    except BaseException:
        for log in sorted([*root.glob("*.log"), *root.glob("c*/server.log")]):
            print(
                f"--- {log.relative_to(root)} (tail)\n"
                + "\n".join(log.read_text().splitlines()[-30:])
            )
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        teardown()
        atexit.unregister(teardown)
        print(f"cluster run took {time.monotonic() - begun:.0f}s, torn down")


async def _run(
    rabbit: RabbitCluster, postgres: PostgresPair, key_pair: tuple[Path, Path], root: Path
) -> None:
    rng = random.Random(20261127)
    plan = make_plan(rng, ORDERS)
    database_url = postgres.url("conekta_ingest")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CONEKTA_INGEST_LOG_LEVEL": "warning",
        "CONEKTA_WEBHOOK_KEYS": str(key_pair[1]),
        "CONEKTA_INGEST_PUBLISH_TIMEOUT": "2",
        "CONEKTA_INGEST_BATCH_SIZE": "64",
    }
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "migrate", env={**env, "AMQP_URL": rabbit.url(0, CLIENT_QUERY)}
    )
    assert await migrate.wait() == 0
    checker = await aio_pika.connect_robust(rabbit.nodes[0].url())
    probe = await bind_probe(checker, topology.FULFILLMENT_EXCHANGE, quorum=True)
    await checker.close()
    workers = [
        Worker(
            {
                **env,
                "AMQP_URL": rabbit.url(n, CLIENT_QUERY),
                "CONEKTA_INGEST_WORKER_METRICS_PORT": str(free_port()),
            },
            root / f"worker{n}.log",
        )
        for n in (1, 2)
    ]
    try:
        await _drive(rabbit, postgres, key_pair, root, plan, env, probe, workers)
    finally:  # on failure too: the workers are ours to stop
        for worker in workers:
            if worker.process is not None and worker.process.returncode is None:
                await worker.kill()


async def _drive(
    rabbit: RabbitCluster,
    postgres: PostgresPair,
    key_pair: tuple[Path, Path],
    root: Path,
    plan: Plan,
    env: dict[str, str],
    probe: str,
    workers: list[Worker],
) -> None:
    database_url = env["DATABASE_URL"]
    for worker in workers:
        await worker.start()
    tally, stalls, done = Tally(), Stalls(), asyncio.Event()
    receiver_env = {**env, "AMQP_URL": rabbit.url(0, CLIENT_QUERY)}
    watcher = asyncio.create_task(watch_apply(database_url, tally, stalls, done))
    async with receiver_process(receiver_env, free_port(), root / "receiver.log") as url:
        started = time.monotonic()
        await asyncio.gather(
            conekta(url, key_pair[0], plan, tally, random.Random(7), rate=SEND_RATE),
            inject(rabbit, postgres, tally, started),
        )
        streamed = time.monotonic() - started
    db = await asyncpg.connect(database_url)
    try:
        await wait_for(lambda: _all_archived(db, plan), timeout=300, what="every event applied")
        await wait_for(lambda: _outbox_flushed(db), timeout=120, what="outbox flushed")
        done.set()
        await watcher
        for worker in workers:
            assert await worker.stop() == 0
        await _verify(db, rabbit, database_url, plan, probe, tally)
    finally:
        done.set()
        await db.close()
    print(
        f"cluster run: streamed {streamed:.0f}s; faults: {'; '.join(tally.faults)}\n"
        f"longest intake outage (503s) {_longest(tally.outages):.1f}s, "
        f"longest apply stall {_longest(stalls.periods):.1f}s\n"
        f"503s: {_periods(tally.outages, started)}\n"
        f"apply stalls: {_periods(stalls.periods, started)}\n"
        f"workers held their batch for the database {_paused(root)} times (their logs); "
        "dead letters 0"
    )


def _paused(root: Path) -> int:
    return sum(log.read_text().count("database unreachable") for log in root.glob("worker*.log"))


def _longest(periods: list[tuple[float, float]]) -> float:
    return max((end - start for start, end in periods), default=0.0)


def _periods(periods: list[tuple[float, float]], started: float) -> str:
    """Each period over half a second, as `seconds@t=start`."""
    shown = [f"{end - start:.1f}s@t={start - started:.0f}s" for start, end in periods]
    return ", ".join(s for s, (a, b) in zip(shown, periods, strict=True) if b - a > 0.5) or "none"


async def _verify(
    db: asyncpg.Connection[Any],
    rabbit: RabbitCluster,
    database_url: str,
    plan: Plan,
    probe: str,
    tally: Tally,
) -> None:
    broker = await aio_pika.connect_robust(rabbit.nodes[0].url())
    try:
        async with Store.open(database_url) as store:
            await _check(db, broker, plan, probe, tally, store)
        channel = await broker.channel()
        unrouted = await channel.declare_queue(topology.FULFILLMENT_UNROUTED_QUEUE, passive=True)
        assert unrouted.declaration_result.message_count == 0  # every message reached its queue
    finally:
        await broker.close()
    applied = await db.fetchval("SELECT count(*) FROM events")
    accepted = len(tally.accepted_ids)
    lost = len(tally.accepted_ids - {r[0] for r in await db.fetch("SELECT event_id FROM events")})
    duplicated = (
        applied
        - len(plan.unique_ids)
        + (await db.fetchval("SELECT count(*) FROM ledger_transactions") - plan.postings)
    )
    print(f"accepted {accepted}, applied {applied}, lost {lost}, duplicated {duplicated}")
    assert (accepted, lost, duplicated) == (applied, 0, 0)


pytestmark = pytest.mark.timeout(1200)
