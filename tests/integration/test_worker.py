"""The worker on real PostgreSQL and RabbitMQ: exactly once, in any order, on hot accounts."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeAlias

import aio_pika
import asyncpg
import jsonschema_rs
import orjson
import pytest

import schemas
from core import topology
from core.settings import Settings
from domain.outcome import Outcome
from ingest.send import send_files
from ops import ledger
from store import Store, migrations
from testkit.events import SAMPLES, order_event
from testkit.services import (
    balances,
    bind_probe,
    count,
    drain,
    publish_events,
    running_receiver,
    running_worker,
)
from testkit.wait import wait_for

validate_fulfillment = jsonschema_rs.validator_for(schemas.load("fulfillment.json")).validate
Db: TypeAlias = "asyncpg.Connection[Any]"


async def archived(db: Db) -> int:
    return await count(db, "SELECT count(*) FROM events")


async def wait_archived(db: Db, n: int, timeout: float = 30) -> None:
    async def done() -> bool:
        return await archived(db) >= n

    await wait_for(done, timeout=timeout, what=f"{n} events archived")


async def wait_outbox_sent(db: Db) -> None:
    async def sent() -> bool:
        return await count(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0

    await wait_for(sent, what="outbox flushed")


async def fulfillment_messages(broker: Any, probe: str) -> list[Any]:
    return await drain(await broker.channel(), probe)


async def test_samples_end_to_end(
    settings: Settings, broker: Any, db: Db, key_pair: tuple[Path, Path], store: Store
) -> None:
    probe = await bind_probe(broker, topology.FULFILLMENT_EXCHANGE)
    async with running_receiver(settings) as url, running_worker(settings):
        failures = await send_files(sorted(SAMPLES.glob("*.json")), url, key_pair[0])
        assert failures == 0
        await wait_archived(db, 10)  # every sample but the ping
        await wait_outbox_sent(db)
    outcomes = dict(await db.fetch("SELECT type, outcome FROM events"))
    # The chargeback's file sorts first: it waited in a retry queue until its payment was booked.
    handled = {t for t in outcomes if t in topology.ORDER_EVENT_TYPES}
    assert {t for t, o in outcomes.items() if o == "applied"} == handled
    assert {t for t, o in outcomes.items() if o == "ignored"} == {"charge.declined", "charge.paid"}
    assert await _queue_depth(broker, topology.UNHANDLED_QUEUE) == 0
    statuses = dict(await db.fetch("SELECT id, status FROM orders"))
    assert statuses == {
        "ord_2su3ENUyByXnjb15N": "paid",
        "ord_2tTirxDJEFDe8NUAN": "pending_payment",
        "ord_2tSoWNL3A41LDVatK": "declined",
        "ord_2tqaGQYZyvBsMKEgs": "canceled",
        "ord_2zqnvjdK1zyFYp6c2": "expired",
        "ord_2tV52JvSom2w3E8bX": "refunded",
    }
    # Payments 20000 and 40000, gross; their fees 796 and 1972, each its own movement, split by
    # the 16 % IVA inside them (686 + 110, 1700 + 272); refunds 15000 + 25000 of the second; a
    # chargeback opened on the first (action_required) withholds its 20000.
    assert await balances(db) == {
        "conekta:receivable": 20000 + 40000 - 796 - 1972 - 40000 - 20000,
        "conekta:fees": 686 + 1700,
        "tax:vat_on_fees": 110 + 272,
        "conekta:disputed": 20000,
        "customer:cus_2ss5YAeTKuEr5M4fD": 20000,
        "customer:cus_2tKZmA749BLsMRgBY": 0,
    }
    assert all(not rows for _, rows in await ledger.verify(store))
    order = await ledger.order(store, "ord_2su3ENUyByXnjb15N")
    assert order is not None
    assert order["chargebacks"][0]["id"] == "chbk_2sv4Tq8mWnXb7KdPe"
    assert order["chargebacks"][0]["status"] == "open"
    assert order["chargebacks"][0]["conekta_status"] == "action_required"
    refunded = await ledger.order(store, "ord_2tV52JvSom2w3E8bX")
    assert refunded is not None and refunded["refunded_amount"] == 40000
    messages = await fulfillment_messages(broker, probe)
    assert sorted(m.routing_key for m in messages) == sorted(handled)
    for message in messages:
        body = orjson.loads(message.body)
        validate_fulfillment(body)
        assert message.message_id == body["message_id"]
    paid = next(orjson.loads(m.body) for m in messages if m.routing_key == "order.paid")
    assert (paid["amount"], paid["currency"], paid["customer"]["key"]) == (
        20000,
        "MXN",
        "cus_2ss5YAeTKuEr5M4fD",
    )
    assert b"5454" not in b"".join(m.body for m in messages)  # no card data downstream


async def test_duplicates_by_id_and_by_business_key(
    settings: Settings, broker: Any, db: Db
) -> None:
    probe = await bind_probe(broker, topology.FULFILLMENT_EXCHANGE)
    first = order_event("order.paid", "ord_dup", amount=5000, fee=200)
    resent = orjson.loads(first)
    resent["webhook_logs"] = [{"failed_attempts": 1}]  # a retry: other bytes, same id
    other_id = order_event("order.paid", "ord_dup", amount=5000, fee=200)  # same money
    async with running_worker(settings):
        await publish_events(broker, [first, first, orjson.dumps(resent), other_id])
        await wait_archived(db, 2)
        await wait_for(lambda: _queue_empty(broker), what="queue drained")
        await wait_outbox_sent(db)
    outcomes = dict(await db.fetch("SELECT event_id, outcome FROM events"))
    assert sorted(outcomes.values()) == ["applied", "duplicate"]
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 2  # payment, fee
    assert await balances(db) == {
        "conekta:receivable": 4800,
        "conekta:fees": 172,  # 200 / 1.16 = 172.4
        "tax:vat_on_fees": 28,
        "customer:cus_test": 5000,
    }
    assert len(await fulfillment_messages(broker, probe)) == 1


async def _queue_depth(broker: Any, name: str) -> int:
    channel = await broker.channel()
    queue = await channel.declare_queue(name, passive=True)
    await channel.close()
    return int(queue.declaration_result.message_count or 0)


async def _queue_empty(broker: Any) -> bool:
    return await _queue_depth(broker, topology.ORDERS_QUEUE) == 0


ARRIVALS = list(
    itertools.permutations(
        [("order.pending_payment", 100), ("order.paid", 200), ("order.declined", 300)]
    )
)


@pytest.mark.parametrize("batch_size", [1, 256])
async def test_every_order_of_arrival_ends_paid_once(
    settings: Settings, broker: Any, db: Db, batch_size: int, store: Store
) -> None:
    probe = await bind_probe(broker, topology.FULFILLMENT_EXCHANGE)
    bodies = []
    for n, arrival in enumerate(ARRIVALS):
        for event_type, created_at in arrival:
            bodies.append(
                order_event(
                    event_type,
                    f"ord_perm{n}",
                    created_at=created_at,
                    amount=1000,
                    fee=50,
                    customer_id=f"cus_{n}",
                )
            )
    async with running_worker(replace(settings, batch_size=batch_size)):
        await publish_events(broker, bodies)
        await wait_archived(db, len(bodies))
        await wait_outbox_sent(db)
    assert set(dict(await db.fetch("SELECT id, status FROM orders")).values()) == {"paid"}
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 2 * len(ARRIVALS)
    assert await balances(db) == {
        "conekta:receivable": 950 * len(ARRIVALS),
        "conekta:fees": 43 * len(ARRIVALS),  # 50 / 1.16 = 43.1
        "tax:vat_on_fees": 7 * len(ARRIVALS),
        **{f"customer:cus_{n}": 1000 for n in range(len(ARRIVALS))},
    }
    applied = await count(db, "SELECT count(*) FROM events WHERE outcome = 'applied'")
    messages = await fulfillment_messages(broker, probe)
    assert len(messages) == applied == len({m.message_id for m in messages})
    assert all(not rows for _, rows in await ledger.verify(store))


async def test_a_declined_order_can_become_paid_but_never_back(
    settings: Settings, broker: Any, db: Db
) -> None:
    async with running_worker(settings):
        await publish_events(broker, [order_event("order.declined", "ord_d", created_at=100)])
        await wait_archived(db, 1)
        await publish_events(broker, [order_event("order.paid", "ord_d", created_at=50)])
        await wait_archived(db, 2)
        await publish_events(
            broker, [order_event("order.pending_payment", "ord_d", created_at=500)]
        )
        await wait_archived(db, 3)
    assert await count(db, "SELECT count(*) FROM orders WHERE status = 'paid'") == 1
    outcomes = [
        r["outcome"] for r in await db.fetch("SELECT outcome FROM events ORDER BY applied_at")
    ]
    assert outcomes == ["applied", "applied", "stale"]


async def test_two_workers_on_one_hot_account(
    settings: Settings, broker: Any, db: Db, store: Store
) -> None:
    n = 1500
    bodies = [
        order_event("order.paid", f"ord_hot{i}", amount=1000 + i % 7, fee=30, customer_id="cus_hot")
        for i in range(n)
    ]
    # Duplicates of every tenth event, by id and by business key, race across the workers.
    bodies += bodies[::10] + [
        order_event("order.paid", f"ord_hot{i}", amount=1000 + i % 7, fee=30, customer_id="cus_hot")
        for i in range(0, n, 10)
    ]
    await publish_events(broker, bodies)
    small = replace(settings, batch_size=64)
    async with running_worker(small), running_worker(replace(small, port=0)):
        await wait_archived(db, n + n // 10, timeout=60)
        await wait_for(lambda: _queue_empty(broker), what="queue drained")
    total = sum(1000 + i % 7 for i in range(n))
    assert await balances(db) == {
        "conekta:receivable": total - 30 * n,
        "conekta:fees": 26 * n,  # 30 / 1.16 = 25.9
        "tax:vat_on_fees": 4 * n,
        "customer:cus_hot": total,
    }
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 2 * n
    assert all(not rows for _, rows in await ledger.verify(store))


async def test_permanent_failure_is_dead_lettered_and_touches_nothing(
    settings: Settings, broker: Any, db: Db
) -> None:
    bad = order_event("order.paid", "ord_eur", currency="EUR")
    good = order_event("order.paid", "ord_ok")
    async with running_worker(settings):
        await publish_events(broker, [bad, good])
        await wait_archived(db, 1)

        async def dead_lettered() -> bool:
            return await count(db, "SELECT count(*) FROM dead_letters") == 1

        await wait_for(dead_lettered, what="dead letter")
    [letter] = await db.fetch("SELECT * FROM dead_letters")
    assert letter["body"] == bad
    assert letter["message_id"] == orjson.loads(bad)["id"]
    assert letter["kind"] == "permanent"
    assert letter["source_queue"] == topology.ORDERS_QUEUE
    assert (letter["exchange"], letter["routing_key"]) == (topology.EVENTS_EXCHANGE, "order.paid")
    assert "unknown currency EUR" in letter["reason"]
    assert orjson.loads(letter["headers"])["x-error-kind"] == "permanent"
    assert await count(db, "SELECT count(*) FROM orders WHERE id = 'ord_eur'") == 0


async def test_migrations_apply_once_even_concurrently(template_database: str) -> None:
    import asyncio
    import uuid

    from testkit.isolation import database_url_for, drop_database

    name = f"conekta_test_migrate_{uuid.uuid4().hex[:8]}"
    url = database_url_for(name)
    try:
        results = await asyncio.gather(*(migrations.migrate(url) for _ in range(3)))
        assert sorted(len(r) for r in results) == [0, 0, len(migrations.available())]
        assert await migrations.migrate(url) == []
    finally:
        await drop_database(name)


def test_message_ids_are_stable() -> None:
    from domain.fulfillment import message_id
    from domain.order_event import parse_order_event

    event = parse_order_event(order_event("order.paid", "ord_s", event_id="a" * 24))
    assert event.order_id is not None
    assert message_id(event.order_id, event.event_id) == "ful_ord_s_" + "a" * 24


__all__ = ["aio_pika"]


async def test_every_archived_outcome_is_known_to_the_database(db: Db) -> None:
    """domain.outcome.Outcome and the event_outcomes table name the same outcomes (REDELIVERED is
    never archived: the event is there already)."""
    known = {r["name"] for r in await db.fetch("SELECT name FROM event_outcomes")}
    assert known == {o.value for o in Outcome} - {Outcome.REDELIVERED.value}
