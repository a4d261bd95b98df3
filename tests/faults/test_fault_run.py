"""`make faults`: a stream of webhooks as Conekta sends them (duplicates, reordering, resends of
what was refused) while the worker is SIGKILLed, RabbitMQ and Postgres restart, and connections
are cut or stalled. Then everything is checked against totals computed from what was sent.

It restarts this machine's RabbitMQ application and PostgreSQL cluster: run it on its own.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson

from core import signature, topology
from core.settings import Settings
from ops import ledger
from store import Store
from testkit import dbfaults
from testkit.events import order_event_document
from testkit.proxy import TcpProxy
from testkit.services import bind_probe, drain, free_port
from testkit.wait import wait_for

# Printed after the faults that say something about them.
WATCHED = (
    "conekta_task_failures_total",
    "conekta_task_failing",
    "conekta_worker_database_unavailable",
    "conekta_worker_dead_letters_open",
    "conekta_worker_retries_total",
)
ORDERS = 1500
SEND_RATE = 150.0  # deliveries per second, paced so the faults land mid-stream
CONCURRENCY = 16


@dataclass
class Plan:
    """What is sent, and the totals it must produce, computed without the product's code."""

    deliveries: list[bytes] = field(default_factory=list)  # in send order, resends included
    unique_ids: set[str] = field(default_factory=set)
    final_status: dict[str, str] = field(default_factory=dict)
    balances: Counter[str] = field(default_factory=Counter)
    payments: int = 0
    postings: int = 0  # payments and their fees


def make_plan(rng: random.Random, orders: int = ORDERS) -> Plan:
    plan = Plan()
    documents = []
    for n in range(orders):
        order_id, amount, fee = f"ord_f{n}", 1000 + n % 500, 30 + n % 7
        customer = "cus_hot" if n % 3 == 0 else f"cus_f{n}"
        kind = n % 10
        if kind < 5:  # card: paid at once
            steps, final = [("order.paid", 100)], "paid"
        elif kind < 8:  # cash: pending, paid hours later
            steps, final = [("order.pending_payment", 100), ("order.paid", 200)], "paid"
        else:  # declined card, then pending cash
            steps, final = (
                [("order.declined", 100), ("order.pending_payment", 150)],
                "pending_payment",
            )
        for event_type, at in steps:
            documents.append(
                order_event_document(
                    event_type,
                    order_id,
                    created_at=1_700_000_000 + at,
                    amount=amount,
                    fee=fee,
                    customer_id=customer,
                )
            )
        plan.final_status[order_id] = final
        if final == "paid":
            plan.payments += 1
            plan.balances["conekta:receivable"] += amount - fee
            # The fee is its own movement, less the 16 % IVA in it: F / 1.16 rounded half up.
            commission = (200 * fee + 116) // 232
            plan.balances["conekta:fees"] += commission
            plan.balances["tax:vat_on_fees"] += fee - commission
            plan.postings += 1 + (fee > 0)
            plan.balances[f"customer:{customer}"] += amount
    plan.unique_ids = {d["id"] for d in documents}
    bodies = [orjson.dumps(d) for d in documents]
    for d in rng.sample(documents, len(documents) // 10):  # Conekta's retries: other bytes
        d["webhook_logs"] = [{"failed_attempts": 1, "last_http_response_status": 500}]
        bodies.append(orjson.dumps(d))
    rng.shuffle(bodies)  # any order of arrival
    plan.deliveries = bodies
    return plan


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    faults: list[str] = field(default_factory=list)
    accepted_ids: set[str] = field(default_factory=set)
    refusing_since: float | None = None  # first refusal since the last accepted delivery
    outages: list[tuple[float, float]] = field(default_factory=list)  # refused, none accepted
    observed: list[str] = field(default_factory=list)  # worker metrics right after a fault

    def answered(self, body: bytes, ok: bool) -> None:
        now = time.monotonic()
        if ok:
            self.accepted += 1
            self.accepted_ids.add(orjson.loads(body)["id"])
            if self.refusing_since is not None:
                self.outages.append((self.refusing_since, now))
                self.refusing_since = None
        else:
            self.refused += 1
            self.refusing_since = self.refusing_since or now


async def conekta(
    url: str,
    key: Path,
    plan: Plan,
    tally: Tally,
    rng: random.Random,
    rate: float = SEND_RATE,
) -> None:
    """Deliver every body until it is answered 200, resending refused ones with backoff."""
    private = signature.load_private_key(key)
    pending: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
    for body in plan.deliveries:
        pending.put_nowait((body, 0))
    started = time.monotonic()

    async def deliver(session: aiohttp.ClientSession) -> None:
        while not pending.empty():
            body, tries = pending.get_nowait()
            await asyncio.sleep(max(0.0, started + tally.sent / rate - time.monotonic()))
            tally.sent += 1
            try:
                async with session.post(
                    url,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "DIGEST": signature.sign(body, private),
                    },
                ) as response:
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            tally.answered(body, ok)
            if ok:
                continue
            await asyncio.sleep(min(0.2 * 2**tries, 3.0) * rng.uniform(0.5, 1.0))
            pending.put_nowait((body, tries + 1))

    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not pending.empty():
            await asyncio.gather(*(deliver(session) for _ in range(CONCURRENCY)))


def through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def started_proxy(url: str, default_port: int) -> TcpProxy:
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port)
    await proxy.start()
    return proxy


async def run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    assert await process.wait() == 0, command


async def restart_rabbitmq() -> None:
    await run("rabbitmqctl", "-q", "stop_app")
    await run("rabbitmqctl", "-q", "start_app")
    await run("rabbitmqctl", "-q", "await_startup")


async def restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    await run(
        "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"
    )


class Worker:
    """`conekta-ingest work` as a process that can be killed and started again."""

    def __init__(self, env: dict[str, str], log: Path | None = None) -> None:
        self.env = env
        self.log = log
        self.health = f"http://127.0.0.1:{env['CONEKTA_INGEST_WORKER_METRICS_PORT']}/healthz"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "work",
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=_log(self.log),
        )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def metrics(self, names: tuple[str, ...]) -> str:
        """The worker's samples of these metrics, one line each ('' when it does not answer)."""
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(self.health.replace("/healthz", "/metrics")) as r,
                session.get(self.health.replace("/healthz", "/readyz")) as ready,
            ):
                text, readiness = await r.text(), ready.status
        except aiohttp.ClientError:
            return "(worker not answering)"
        lines = [line for line in text.splitlines() if line.startswith(names)]
        return f"readyz {readiness}; " + "; ".join(lines)

    async def stop(self) -> int:
        """SIGTERM once it is up (before that, the default handler would simply kill it)."""
        assert self.process is not None

        async def up() -> bool:
            try:
                async with aiohttp.ClientSession() as session, session.get(self.health) as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(up, timeout=60, what="worker up")
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)


async def inject_faults(
    worker: Worker, proxies: dict[str, TcpProxy], tally: Tally, database_url: str
) -> None:
    async def pause(seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def kill_worker() -> None:
        await worker.kill()
        await pause(0.5)
        await worker.start()

    async def cut(name: str, seconds: float) -> None:
        await proxies[name].cut()
        await pause(seconds)
        await proxies[name].restore()

    async def stall(name: str, seconds: float) -> None:
        proxies[name].stall()
        await pause(seconds)
        proxies[name].unstall()

    async def disk_full(seconds: float) -> None:
        """Every write fails with SQLSTATE 53100 (disk full), as Postgres would, then heals."""
        db = await asyncpg.connect(database_url)
        try:
            async with dbfaults.failing_writes(db, "53100"):
                await pause(seconds)
                tally.observed.append(f"during disk full: {await worker.metrics(WATCHED)}")
        finally:
            await db.close()
        await pause(3)
        tally.observed.append(f"3 s after disk full: {await worker.metrics(WATCHED)}")

    schedule: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("SIGKILL worker", kill_worker),
        ("cut worker->postgres 2s", lambda: cut("worker_db", 2)),
        ("restart RabbitMQ", restart_rabbitmq),
        ("SIGKILL worker", kill_worker),
        ("restart PostgreSQL", restart_postgres),
        ("disk full (SQLSTATE 53100) 10s", lambda: disk_full(10)),
        ("stall receiver->rabbitmq 3s", lambda: stall("receiver_amqp", 3)),
        ("cut worker->rabbitmq 2s", lambda: cut("worker_amqp", 2)),
        ("SIGKILL worker", kill_worker),
    ]
    for name, fault in schedule:
        await pause(1.5)
        await fault()
        tally.faults.append(name)


def _log(path: Path | None) -> Any:
    """Where a product process writes its log: a file (appended) or nowhere."""
    return asyncio.subprocess.DEVNULL if path is None else path.open("ab")


@asynccontextmanager
async def receiver_process(
    env: dict[str, str], port: int, log: Path | None = None
) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "serve",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=_log(log),
    )
    base = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(base + "/readyz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    try:
        await wait_for(ready, what="receiver ready")
        yield base + "/webhooks/conekta"
    finally:
        process.terminate()
        await process.wait()


async def fresh_db(settings: Settings) -> asyncpg.Connection[Any]:
    async def reachable() -> bool:
        try:
            await (await asyncpg.connect(settings.database_url)).close()
        except (OSError, asyncpg.PostgresError):
            return False
        return True

    await wait_for(reachable, timeout=60, what="postgres back")
    return await asyncpg.connect(settings.database_url)


async def test_fault_run_loses_nothing(
    settings: Settings, broker: Any, key_pair: tuple[Path, Path]
) -> None:
    rng = random.Random(20261126)
    plan = make_plan(rng)
    probe = await bind_probe(broker, topology.FULFILLMENT_EXCHANGE)
    proxies = {
        "receiver_amqp": await started_proxy(settings.amqp_url, 5672),
        "worker_amqp": await started_proxy(settings.amqp_url, 5672),
        "worker_db": await started_proxy(settings.database_url, 5432),
    }
    base_env = {
        **os.environ,
        "CONEKTA_INGEST_LOG_LEVEL": "warning",
        "CONEKTA_WEBHOOK_KEYS": str(key_pair[1]),
        "CONEKTA_INGEST_PUBLISH_TIMEOUT": "2",
    }
    receiver_env = {**base_env, "AMQP_URL": through(settings.amqp_url, proxies["receiver_amqp"])}
    worker = Worker(
        {
            **base_env,
            "AMQP_URL": through(settings.amqp_url, proxies["worker_amqp"]),
            "DATABASE_URL": through(settings.database_url, proxies["worker_db"]),
            "CONEKTA_INGEST_BATCH_SIZE": "64",
            "CONEKTA_INGEST_WORKER_METRICS_PORT": str(free_port()),
        }
    )
    tally = Tally()
    await worker.start()
    async with receiver_process(receiver_env, free_port()) as url:
        await asyncio.gather(
            conekta(url, key_pair[0], plan, tally, rng),
            inject_faults(worker, proxies, tally, settings.database_url),
        )
    db = await fresh_db(settings)
    try:
        await wait_for(lambda: _all_archived(db, plan), timeout=180, what="every event applied")
        await wait_for(lambda: _outbox_flushed(db), timeout=60, what="outbox flushed")
        assert await worker.stop() == 0
        async with Store.open(settings.database_url) as store:
            await _check(db, broker, plan, probe, tally, store)
    finally:
        await db.close()
        for proxy in proxies.values():
            await proxy.close()


async def _all_archived(db: asyncpg.Connection[Any], plan: Plan) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM events") >= len(plan.unique_ids))


async def _outbox_flushed(db: asyncpg.Connection[Any]) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0)


async def _check(
    db: asyncpg.Connection[Any],
    broker: Any,
    plan: Plan,
    probe: str,
    tally: Tally,
    store: Store,
) -> None:
    archived = {
        r["event_id"]: r["outcome"] for r in await db.fetch("SELECT event_id, outcome FROM events")
    }
    assert set(archived) == plan.unique_ids  # each event once, none lost, none invented
    statuses = dict(await db.fetch("SELECT id, status FROM orders"))
    assert statuses == plan.final_status
    balances = {r["account"]: r["balance"] for r in await ledger.balances(store)}
    assert balances == dict(plan.balances)
    assert await db.fetchval("SELECT count(*) FROM ledger_transactions") == plan.postings
    assert all(not rows for _, rows in await ledger.verify(store))
    channel = await broker.channel()
    stuck = {}
    for name in (
        topology.ORDERS_QUEUE,
        topology.DEAD_LETTER_QUEUE,
        topology.PARKED_QUEUE,
        topology.UNHANDLED_QUEUE,
        *(
            topology.retry_queue_name(topology.ORDERS_QUEUE, t)
            for t in range(len(topology.RETRY_DELAYS_MS))
        ),
    ):
        queue = await channel.declare_queue(name, passive=True)
        stuck[name] = queue.declaration_result.message_count
    assert not any(stuck.values()), stuck
    assert await db.fetchval("SELECT count(*) FROM dead_letters") == 0
    messages = await drain(channel, probe)
    ids = Counter(m.message_id for m in messages)
    applied = {
        f"ful_{o}_{e}"
        for e, o in await db.fetch(
            "SELECT event_id, order_id FROM events WHERE outcome = 'applied'"
        )
    }
    assert set(ids) == applied  # one per applied change, none for duplicates or stale events
    repeated = sum(n - 1 for n in ids.values())
    print(
        f"\nfault run: sent {tally.sent} deliveries ({len(plan.deliveries)} bodies, "
        f"{len(plan.unique_ids)} unique events), accepted {tally.accepted}, refused "
        f"{tally.refused} (resent until accepted), applied {len(plan.unique_ids)}, "
        f"duplicates absorbed {tally.accepted - len(plan.unique_ids)}, state changes "
        f"{len(applied)}, fulfillment messages {len(messages)} ({repeated} repeated ids), "
        f"faults injected {len(tally.faults)}: {', '.join(tally.faults)}; lost 0"
    )
    for line in tally.observed:
        print(f"  {line}")
