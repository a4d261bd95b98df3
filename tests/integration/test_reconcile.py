"""Reconcile, orders verify and orders record against the fake Conekta API, with the real
worker, PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from core.broker import Publisher, connect
from core.errors import ConektaApiUnavailable
from core.settings import Settings
from ops import ledger
from store import Store
from testkit.events import (
    charge_refunded_event,
    new_event_id,
    order_event_document,
    order_of,
)
from testkit.fake_conekta import FakeConekta, running
from testkit.processes import cli
from testkit.services import (
    balances,
    bind_probe,
    count,
    drain,
    publish_events,
    running_worker,
)
from testkit.wait import wait_for
from worker.conekta_api import ConektaApi
from worker.reconcile import Applier, reconcile

Db: TypeAlias = "asyncpg.Connection[Any]"
NOW = int(time.time())


def event(event_type: str, order_id: str, hours_ago: float, **kwargs: Any) -> dict[str, Any]:
    created = NOW - int(hours_ago * 3600)
    return order_event_document(
        event_type, order_id, created_at=created, event_id=new_event_id(created), **kwargs
    )


def charge_refunded(paid: dict[str, Any], hours_ago: float, amount: int) -> dict[str, Any]:
    created = NOW - int(hours_ago * 3600)
    order_id = paid["data"]["object"]["id"]
    charge = paid["data"]["object"]["charges"]["data"][0]
    body = charge_refunded_event(
        order_id,
        charge_id=charge["id"],
        refunds=(("rfd_r1", amount, created),),
        amount=charge["amount"],
        fee=charge["fee"],
        event_id=new_event_id(created),
        created_at=created,
    )
    document: dict[str, Any] = orjson.loads(body)
    return document


def other_event(event_type: str, hours_ago: float) -> dict[str, Any]:
    created = NOW - int(hours_ago * 3600)
    return {
        "id": new_event_id(created),
        "object": "event",
        "type": event_type,
        "livemode": False,
        "created_at": created,
        "data": {"object": {"id": "chr_x", "object": "charge", "order_id": "ord_a"}},
    }


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeConekta, str]]:
    conekta = FakeConekta()
    async with running(conekta) as url:
        yield conekta, url


@pytest.fixture
def api_settings(settings: Settings, fake: tuple[FakeConekta, str]) -> Settings:
    return replace(settings, conekta_api_url=fake[1], conekta_api_key=fake[0].key)


async def archived(db: Db) -> int:
    return await count(db, "SELECT count(*) FROM events")


async def wait_archived(db: Db, n: int) -> None:
    async def done() -> bool:
        return await archived(db) >= n

    await wait_for(done, timeout=30, what=f"{n} events archived")


async def test_gaps_are_backfilled_and_applied_once(
    settings: Settings,
    api_settings: Settings,
    fake: tuple[FakeConekta, str],
    broker: Any,
    db: Db,
    store: Store,
) -> None:
    conekta, _ = fake
    delivered = event("order.pending_payment", "ord_a", 3, amount=20_000, fee=800)
    missed = [
        event("order.paid", "ord_a", 2, amount=20_000, fee=800),
        event("order.paid", "ord_b", 2, amount=5_000, fee=200),
        other_event("charge.paid", 2),
    ]
    too_old = event("order.paid", "ord_old", 24 * 4)
    ping = {**other_event("webhook_ping", 1), "data": {"livemode": False, "action": "ping"}}
    for document in [too_old, delivered, *missed, ping]:
        conekta.add_event(document)
    async with running_worker(settings):  # no key: it does not reconcile on its own
        await publish_events(broker, [orjson.dumps(delivered)])  # its webhook arrived
        await wait_archived(db, 1)
        code, output = await cli(api_settings, "reconcile", "--json")
        assert code == 0, output
        first = orjson.loads(output)
        assert (first["seen"], first["archived"], first["backfilled"]) == (5, 1, 3)
        assert first["never_stored"] == 1
        assert first["by_type"]["order.paid"] == {"seen": 2, "backfilled": 2}
        await wait_archived(db, 4)
        # The same window again (by default a run starts where the last one ended)
        code, output = await cli(api_settings, "reconcile", "--since", first["since"])
        assert code == 0, output
        assert "seen 5, already archived 4, backfilled 0" in output
    print(output)  # the closing note shows a run
    audited = await db.fetch("SELECT actor, action, count FROM audit_log ORDER BY id")
    assert [(r["action"], r["count"]) for r in audited] == [("reconcile", 3), ("reconcile", 0)]
    assert all(r["actor"].startswith("os:") for r in audited)
    assert await count(db, "SELECT count(*) FROM events WHERE event_id = $1", too_old["id"]) == 0
    statuses = dict(await db.fetch("SELECT id, status FROM orders"))
    assert statuses == {"ord_a": "paid", "ord_b": "paid"}
    assert await balances(db) == {
        "conekta:receivable": 19_200 + 4_800,
        "conekta:fees": 690 + 172,  # fees 800 and 200 less the IVA in them (/ 1.16)
        "tax:vat_on_fees": 110 + 28,
        "customer:cus_test": 25_000,
    }
    assert await count(db, "SELECT count(*) FROM reconcile_backfills") == 3
    assert all(not rows for _, rows in await ledger.verify(store))
    code, output = await cli(api_settings, "stats", "--json")
    assert code == 0, output
    accounting = orjson.loads(output)
    types = {t["type"]: t for t in accounting["last_reconcile"]["types"]}
    assert (types["order.paid"]["conekta"], types["order.paid"]["difference"]) == (2, 0)
    assert types["webhook_ping"]["never_stored"] == 1
    assert all(t["unexplained"] == 0 for t in types.values())
    assert sum(row.get("applied", 0) for row in accounting["days"]) == 3
    code, output = await cli(api_settings, "stats")
    assert "last reconcile" in output, output


async def test_two_runs_at_once_apply_each_event_once_as_fetched(
    api_settings: Settings, fake: tuple[FakeConekta, str], broker: Any, db: Db
) -> None:
    """Applied by the process that fetched them (provenance `api`), never published to the
    events exchange, where the worker would believe nothing unsigned."""
    conekta, url = fake
    conekta.max_limit = 7  # several pages
    for n in range(30):
        conekta.add_event(event("order.paid", f"ord_{n}", 1 + n / 10))
    probe = await bind_probe(broker, "conekta.events", "#")

    async def one_run() -> int:
        async with (
            Store.open(api_settings.database_url) as store,
            ConektaApi.open(url, conekta.key) as api,
        ):
            report = await reconcile(store, api, Applier(store), wait=True)
        assert report is not None
        return report.total("backfilled")

    counts = await asyncio.gather(one_run(), one_run())
    assert sorted(counts) == [0, 30]
    assert await drain(await broker.channel(), probe) == []
    rows = await db.fetch("SELECT outcome, provenance FROM events")
    assert [tuple(r) for r in rows] == [("applied", "api")] * 30
    postings = await db.fetch("SELECT DISTINCT provenance FROM ledger_transactions")
    assert [r["provenance"] for r in postings] == ["api"]
    assert await count(db, "SELECT count(*) FROM reconcile_runs WHERE status = 'ok'") == 2


async def test_a_refund_listed_before_its_payment_is_applied_after_it(
    api_settings: Settings, fake: tuple[FakeConekta, str], db: Db
) -> None:
    conekta, _ = fake
    conekta.max_limit = 1  # the refund (newer) on the first page, its payment on the next
    paid = event("order.paid", "ord_r", 3, amount=10_000, fee=300)
    conekta.add_event(paid)
    conekta.add_event(charge_refunded(paid, 2, amount=4_000))
    code, output = await cli(api_settings, "reconcile", "--json")
    assert code == 0, output
    assert orjson.loads(output)["backfilled"] == 2
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 3  # payment, fee, refund


async def test_rate_limits_and_server_errors_are_retried_over_pages(
    api_settings: Settings, fake: tuple[FakeConekta, str], db: Db
) -> None:
    conekta, url = fake
    conekta.max_limit = 4
    for n in range(10):
        conekta.add_event(event("order.paid", f"ord_{n}", 1 + n / 10))
    conekta.fail(429, retry_after="1")
    conekta.fail(500, times=2)
    started = time.monotonic()
    async with (
        Store.open(api_settings.database_url) as store,
        ConektaApi.open(url, conekta.key, retry_base=0.01) as api,
    ):
        report = await reconcile(store, api, None)  # dry run: publishes nothing
        assert time.monotonic() - started >= 1.0  # Retry-After honoured
        assert report is not None
        assert report.pages == 3
        assert [m.event_id for m in report.missing] == [
            e["id"] for e in sorted(conekta.events, key=lambda e: -e["created_at"])
        ]
        assert sum("next=" in r for r in conekta.requests) == 2
        conekta.fail(503, times=10)
        with pytest.raises(ConektaApiUnavailable):
            await reconcile(store, api, None)
    assert await count(db, "SELECT count(*) FROM reconcile_backfills") == 0
    assert await count(db, "SELECT count(*) FROM reconcile_runs WHERE status = 'failed'") == 1


async def test_a_wrong_key_is_a_clear_error(api_settings: Settings) -> None:
    code, output = await cli(replace(api_settings, conekta_api_key="key_wrong"), "reconcile")
    assert code == 2
    assert "refused the key (401)" in output
    assert "Traceback" not in output
    assert "key_wrong" not in output


async def test_dry_run_lists_what_is_missing(
    api_settings: Settings, fake: tuple[FakeConekta, str], broker: Any, db: Db
) -> None:
    conekta, _ = fake
    missing = event("order.paid", "ord_m", 2)
    conekta.add_event(missing)
    probe = await bind_probe(broker, "conekta.events", "#")
    code, output = await cli(api_settings, "reconcile", "--dry-run")
    assert code == 0, output
    assert f"missing {missing['id']}" in output
    assert await drain(await broker.channel(), probe) == []
    assert await count(db, "SELECT count(*) FROM reconcile_backfills") == 0


async def test_the_worker_reconciles_on_its_schedule(
    api_settings: Settings, fake: tuple[FakeConekta, str], db: Db
) -> None:
    conekta, _ = fake
    conekta.add_event(event("order.paid", "ord_s", 2))
    backfilled = sample("conekta_reconcile_backfilled_total")
    failed = runs("failed")
    async with running_worker(replace(api_settings, reconcile_interval=0.2)):
        await wait_archived(db, 1)
        ok_before = await count(db, "SELECT count(*) FROM reconcile_runs WHERE status = 'ok'")
        conekta.fail(401)  # one failing run: logged, counted, retried

        async def failed_then_recovered() -> bool:
            ok = await count(db, "SELECT count(*) FROM reconcile_runs WHERE status = 'ok'")
            return runs("failed") > failed and ok > ok_before

        await wait_for(failed_then_recovered, what="a failed run, then an ok one")
    assert sample("conekta_reconcile_backfilled_total") - backfilled == 1
    assert sample("conekta_reconcile_last_success_timestamp_seconds") > NOW - 60


async def test_a_run_cut_short_by_shutdown_is_recorded_as_stopped(
    api_settings: Settings, fake: tuple[FakeConekta, str], db: Db
) -> None:
    conekta, _ = fake
    conekta.hold = asyncio.Event()  # the API answers nothing until the worker is stopped
    async with running_worker(replace(api_settings, reconcile_interval=60)):
        # Reconcile's own request held (the settle pull, started beside it, is held too).
        async def reconcile_waiting() -> bool:
            return any(path.startswith("/events") for path in conekta.requests)

        await wait_for(reconcile_waiting, timeout=20, what="reconcile's request held")
    conekta.hold.set()
    run = await db.fetchrow("SELECT status, error FROM reconcile_runs ORDER BY id DESC LIMIT 1")
    assert run is not None and run["status"] == "failed"
    assert "stopped" in run["error"]


async def test_orders_verify_reports_status_and_amount_differences(
    settings: Settings, api_settings: Settings, fake: tuple[FakeConekta, str], broker: Any, db: Db
) -> None:
    conekta, _ = fake
    same = event("order.paid", "ord_same", 2)
    changed = event("order.pending_payment", "ord_changed", 2, amount=7_000)
    for document in (same, changed):
        conekta.add_event(document)
    async with running_worker(settings):
        await publish_events(broker, [orjson.dumps(same), orjson.dumps(changed)])
        await wait_archived(db, 2)
    conekta.orders["ord_changed"] = {
        **order_of(changed),
        "payment_status": "paid",
        "amount": 7_500,
    }
    code, output = await cli(api_settings, "orders", "verify", "ord_same")
    assert code == 0, output
    code, output = await cli(api_settings, "orders", "verify", "ord_changed", "ord_same", "--json")
    assert code == 1
    found = orjson.loads(output)["differences"]
    assert {(d["field"], d["ours"], d["conekta"]) for d in found} == {
        ("status", "pending_payment", "paid"),
        ("amount", 7_000, 7_500),
    }


async def test_orders_record_books_once_and_the_webhook_is_a_duplicate(
    settings: Settings, api_settings: Settings, broker: Any, db: Db, tmp_path: Path
) -> None:
    webhook = event("order.paid", "ord_rec", 0.5, amount=30_000, fee=1_000)
    answer = {**order_of(webhook), "created_at": webhook["created_at"] - 2}
    path = tmp_path / "order.json"
    path.write_bytes(orjson.dumps(answer))
    code, output = await cli(api_settings, "orders", "record", str(path))
    assert code == 0, output
    assert "ord_rec: applied" in output
    code, output = await cli(api_settings, "orders", "record", str(path))
    assert "ord_rec: redelivered" in output
    assert await count(db, "SELECT count(*) FROM audit_log WHERE action = 'orders.record'") == 2
    assert await balances(db) == {
        "conekta:receivable": 29_000,
        "conekta:fees": 862,  # 1000 / 1.16
        "tax:vat_on_fees": 138,
        "customer:cus_test": 30_000,
    }
    async with running_worker(settings):
        await publish_events(broker, [orjson.dumps(webhook)])
        await wait_archived(db, 2)
    outcome = await db.fetchval("SELECT outcome FROM events WHERE event_id = $1", webhook["id"])
    assert outcome == "duplicate"
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 2  # payment, fee
    assert (await balances(db))["customer:cus_test"] == 30_000


# -- helpers ------------------------------------------------------------------------------------


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def runs(result: str) -> float:
    return REGISTRY.get_sample_value("conekta_reconcile_runs_total", {"result": result}) or 0.0


@contextlib.asynccontextmanager
async def _publisher(settings: Settings) -> AsyncIterator[Publisher]:
    publisher = Publisher(await connect(settings.amqp_url, "test reconcile", attempts=3), 5.0)
    try:
        yield publisher
    finally:
        await publisher.close()
