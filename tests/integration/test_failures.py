"""Failure handling on real services: the database going away, poison events, replay, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import replace
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
from prometheus_client import REGISTRY

from core import topology
from core.settings import Settings
from domain import fulfillment
from ops import ledger
from store import Store
from testkit.events import order_event
from testkit.processes import cli, worker_process
from testkit.proxy import TcpProxy
from testkit.services import balances, count, publish_events, running_worker
from testkit.wait import wait_for

PAYMENTS = "SELECT count(*) FROM ledger_transactions WHERE kind = 'payment'"

Db: TypeAlias = "asyncpg.Connection[Any]"


async def queue_depth(broker: Any, name: str) -> int:
    channel = await broker.channel()
    queue = await channel.declare_queue(name, passive=True)
    await channel.close()
    return int(queue.declaration_result.message_count or 0)


async def wait_archived(db: Db, n: int, timeout: float = 60) -> None:
    async def done() -> bool:
        return await count(db, "SELECT count(*) FROM events") >= n

    await wait_for(done, timeout=timeout, what=f"{n} events archived")


async def dead_letters(db: Db) -> int:
    """Open dead letters (moved by the worker into Postgres)."""
    return await count(db, "SELECT count(*) FROM dead_letters WHERE status = 'dead'")


def via_proxy(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def test_database_down_mid_stream_loses_and_dead_letters_nothing(
    settings: Settings, broker: Any, db: Db, store: Store
) -> None:
    parts = urlsplit(settings.database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    bodies = [
        order_event("order.paid", f"ord_pg{i}", amount=1500, fee=45, customer_id="cus_pg")
        for i in range(1200)
    ]
    try:
        async with running_worker(
            replace(settings, database_url=via_proxy(settings.database_url, proxy))
        ):
            await publish_events(broker, bodies[:600])
            await wait_archived(db, 100)
            await proxy.cut()
            await publish_events(broker, bodies[600:])

            async def noticed() -> bool:
                return REGISTRY.get_sample_value("conekta_worker_database_unavailable") == 1

            await wait_for(noticed, what="worker to notice the database is down")
            assert await dead_letters(db) == 0
            await proxy.restore()
            await wait_archived(db, len(bodies))
    finally:
        await proxy.close()
    assert await count(db, PAYMENTS) == len(bodies)
    assert await balances(db) == {
        "conekta:receivable": 1455 * 1200,
        "conekta:fees": 39 * 1200,  # 45 / 1.16 = 38.8
        "tax:vat_on_fees": 6 * 1200,
        "customer:cus_pg": 1500 * 1200,
    }
    assert all(not rows for _, rows in await ledger.verify(store))
    assert await dead_letters(db) == 0
    for name in (
        topology.DEAD_LETTER_QUEUE,
        topology.ORDERS_QUEUE,
        *(
            topology.retry_queue_name(topology.ORDERS_QUEUE, t)
            for t in range(len(topology.RETRY_DELAYS_MS))
        ),
    ):
        assert await queue_depth(broker, name) == 0, name


POISON_TRIGGER = """
CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 'ord_poison' THEN RAISE EXCEPTION 'simulated bug for %', NEW.id; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION poison();
"""


async def test_poison_event_is_retried_dead_lettered_and_replayed_once(
    settings: Settings, broker: Any, db: Db
) -> None:
    await db.execute(POISON_TRIGGER)
    poison = order_event("order.paid", "ord_poison", amount=900, fee=9, customer_id="cus_p")
    poison_id = orjson.loads(poison)["id"]
    good = [order_event("order.paid", f"ord_good{i}", customer_id="cus_p") for i in range(50)]
    async with running_worker(replace(settings, max_attempts=3)):
        await publish_events(broker, [poison, *good])
        await wait_archived(db, 50)  # the rest keeps flowing

        async def dead_lettered() -> bool:
            return await dead_letters(db) == 1

        await wait_for(dead_lettered, timeout=30, what="poison event dead-lettered")
        code, output = await cli(settings, "dlq", "list", "--json")
        assert code == 0, output
        [letter] = orjson.loads(output)
        assert letter["id"] == poison_id
        assert letter["order_id"] == "ord_poison"
        assert letter["attempts"] == 3
        assert letter["kind"] == "transient"
        assert "simulated bug" in letter["reason"]
        assert letter["first_failed_at"] <= letter["last_failed_at"]
        code, output = await cli(settings, "dlq", "show", poison_id)
        assert code == 0
        assert orjson.loads(output)["body"]["id"] == poison_id
        assert await count(db, "SELECT count(*) FROM orders WHERE id = 'ord_poison'") == 0

        await db.execute("DROP TRIGGER poison ON orders")  # the fix
        code, output = await cli(settings, "dlq", "replay", poison_id)
        assert code == 0, output
        await wait_archived(db, 51)
        code, output = await cli(settings, "dlq", "replay", poison_id)
        assert code == 1  # nothing left to replay
        assert "not found" in output
    before = await balances(db)
    assert before["customer:cus_p"] == 900 + 50 * 10_000
    code, output = await cli(settings, "events", "replay", "--order", "ord_poison", "--json")
    assert code == 0, output
    assert orjson.loads(output)["outcomes"] == {"duplicate": 1}, output
    code, output = await cli(settings, "events", "replay", "--json")
    assert orjson.loads(output)["replayed"] == 51
    assert await balances(db) == before
    assert await count(db, PAYMENTS) == 51
    code, output = await cli(settings, "events", "show", poison_id)
    assert code == 0
    assert orjson.loads(output)["outcome"] == "applied"


async def test_purge_removes_only_what_it_names(settings: Settings, broker: Any, db: Db) -> None:
    bad = [order_event("order.paid", f"ord_eur{i}", currency="EUR") for i in range(3)]
    ids = [orjson.loads(b)["id"] for b in bad]
    async with running_worker(settings):
        await publish_events(broker, bad)

        async def all_dead() -> bool:
            return await dead_letters(db) == 3

        await wait_for(all_dead, what="three dead letters")
    code, output = await cli(settings, "dlq", "purge", ids[0], "--yes", "--json")
    assert code == 2  # a purge says why
    code, output = await cli(
        settings, "dlq", "purge", ids[0], "--yes", "--reason", "EUR is not ours", "--json"
    )
    assert code == 0, output
    assert orjson.loads(output)["done"] == [ids[0]]
    code, output = await cli(settings, "dlq", "list", "--json")
    assert sorted(r["id"] for r in orjson.loads(output)) == sorted(ids[1:])
    assert {r["kind"] for r in orjson.loads(output)} == {"permanent"}
    code, output = await cli(settings, "dlq", "purge")
    assert code == 2  # says which


async def test_sigterm_under_load_loses_nothing(settings: Settings, broker: Any, db: Db) -> None:
    n = 3000
    await publish_events(
        broker, [order_event("order.paid", f"ord_t{i}", customer_id="cus_t") for i in range(n)]
    )
    async with worker_process(settings) as process:
        await wait_archived(db, 300)
        base = f"http://127.0.0.1:{settings.worker_metrics_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/readyz") as ready:
                assert (ready.status, await ready.json()) == (
                    200,
                    {"status": "ok", "database": True, "broker": True, "tasks": True},
                )
            async with session.get(base + "/metrics") as response:
                exported = await response.text()
        assert 'conekta_worker_events_total{outcome="applied"}' in exported
        assert "conekta_worker_batch_size_bucket" in exported
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    stopped_at = await count(db, "SELECT count(*) FROM events")
    assert stopped_at < n
    async with running_worker(settings):
        await wait_archived(db, n)
    assert await count(db, PAYMENTS) == n
    assert await count(db, "SELECT count(*) FROM outbox") == n
    assert (await balances(db))["customer:cus_t"] == 10_000 * n


async def test_an_event_the_domain_cannot_decide_is_dead_lettered_alone(
    settings: Settings, broker: Any, db: Db, monkeypatch: Any
) -> None:
    """A bug met while deciding one event (here injected into fulfillment.build) is permanent for
    that event alone: dead-lettered at once with its traceback, never retried, and the 255 good
    events of its batch are applied."""
    good = [order_event("order.paid", f"ord_ok{i}", customer_id="cus_ok") for i in range(255)]
    bad = order_event("order.paid", "ord_undecidable", customer_id="cus_ok")
    bad_id = orjson.loads(bad)["id"]
    build = fulfillment.build

    def buggy(event: Any, *args: Any) -> Any:
        if event.event_id == bad_id:
            method: Any = 1.5  # a payment_method of a type nobody expected, as the fuzz found
            return method.get("type")  # AttributeError
        return build(event, *args)

    monkeypatch.setattr(fulfillment, "build", buggy)
    retries_before = REGISTRY.get_sample_value(
        "conekta_worker_retries_total", {"kind": "transient"}
    )
    async with running_worker(replace(settings, batch_size=256, batch_wait=1.0)):
        await publish_events(broker, [*good[:128], bad, *good[128:]])
        await wait_archived(db, 255)

        async def dead_lettered() -> bool:
            return await dead_letters(db) == 1

        await wait_for(dead_lettered, timeout=30, what="the undecidable event dead-lettered")
    code, output = await cli(settings, "dlq", "list", "--json")
    assert code == 0, output
    [letter] = orjson.loads(output)
    assert letter["id"] == bad_id and letter["attempts"] == 1
    assert letter["kind"] == "permanent"
    assert "UndecidableEvent" in letter["reason"] and "AttributeError" in letter["reason"]
    code, output = await cli(settings, "dlq", "show", bad_id)
    assert code == 0, output
    assert "in buggy" in orjson.loads(output)["headers"]["x-error-traceback"], output
    assert await count(db, PAYMENTS) == 255
    retries_after = REGISTRY.get_sample_value("conekta_worker_retries_total", {"kind": "transient"})
    assert retries_after == retries_before  # no batch failed, nothing went round the tiers


async def test_sigterm_while_connecting_stops_cleanly(settings: Settings) -> None:
    """SIGTERM while the broker (or the database) answers nothing: exit 0 at once, not a kill at
    the end of the grace period. A listener that accepts and never speaks stands for a node that
    hangs."""
    arrived = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.set()
        await reader.read()  # until the worker gives up the connection
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for hanging in (
            replace(settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/"),
            replace(settings, database_url=f"postgresql://postgres@127.0.0.1:{port}/x"),
        ):
            arrived.clear()
            async with worker_process(hanging, stderr=asyncio.subprocess.PIPE) as process:
                await asyncio.wait_for(arrived.wait(), timeout=30)
                process.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(process.wait(), timeout=15)
                assert process.stderr is not None
                assert code == 0, (await process.stderr.read()).decode()[-3000:]
    finally:
        server.close()
