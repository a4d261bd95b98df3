"""The worker as a real process: SIGKILL mid-stream, SIGTERM, and the read-side commands."""

from __future__ import annotations

import asyncio
import functools
import signal
from typing import Any, TypeAlias

import asyncpg
import orjson

from core import topology
from core.settings import Settings
from testkit.events import order_event
from testkit.processes import cli, worker_process
from testkit.services import balances, bind_probe, count, drain, publish_events, running_worker
from testkit.wait import wait_for

Db: TypeAlias = "asyncpg.Connection[Any]"


async def test_sigkill_mid_batch_loses_nothing_and_applies_nothing_twice(
    settings: Settings, broker: Any, db: Db
) -> None:
    n = 4000
    probe = await bind_probe(broker, topology.FULFILLMENT_EXCHANGE)
    bodies = [
        order_event(
            "order.paid",
            f"ord_k{i}",
            amount=2000,
            fee=100,
            customer_id="cus_hot" if i % 2 else f"cus_{i}",
        )
        for i in range(n)
    ]
    await publish_events(broker, bodies)

    async def archived_at_least(k: int) -> bool:
        return await count(db, "SELECT count(*) FROM events") >= k

    for kill_after in (400, 1600):
        async with worker_process(settings) as process:
            await wait_for(
                functools.partial(archived_at_least, kill_after),
                timeout=60,
                what=f"{kill_after} applied before the kill",
            )
            process.send_signal(signal.SIGKILL)
            await process.wait()
    assert await count(db, "SELECT count(*) FROM events") < n, "killed too late to prove much"
    async with worker_process(settings) as process:
        await wait_for(lambda: archived_at_least(n), timeout=90, what="all applied after restart")

        async def outbox_flushed() -> bool:
            return await count(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0

        await wait_for(outbox_flushed, what="outbox flushed")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 2 * n  # and fees
    half = n // 2
    assert await balances(db) == {
        "conekta:receivable": 1900 * n,
        "conekta:fees": 86 * n,  # 100 / 1.16
        "tax:vat_on_fees": 14 * n,
        "customer:cus_hot": 2000 * half,
        **{f"customer:cus_{i}": 2000 for i in range(0, n, 2)},
    }
    code, output = await cli(settings, "ledger", "verify")
    assert code == 0, output
    messages = await drain(await broker.channel(), probe)
    expected = {f"ful_ord_k{i}_{orjson.loads(b)['id']}" for i, b in enumerate(bodies)}
    # At-least-once relay: a kill between confirm and bookkeeping may repeat a message id,
    # never lose one.
    assert {m.message_id for m in messages} == expected


async def test_ledger_verify_catches_a_corrupted_balance(
    settings: Settings, broker: Any, db: Db
) -> None:
    async with running_worker(settings):
        await publish_events(broker, [order_event("order.paid", "ord_v")])

        async def applied() -> bool:
            return await count(db, "SELECT count(*) FROM events") == 1

        await wait_for(applied, what="event applied")
    code, output = await cli(settings, "ledger", "verify")
    assert code == 0, output
    await db.execute("UPDATE balances SET balance = balance + 1 WHERE account = 'conekta:fees'")
    code, output = await cli(settings, "ledger", "verify")
    assert code == 1
    assert "FAIL  every balance equals the sum of its entries" in output
    code, output = await cli(settings, "ledger", "verify", "--json")
    assert code == 1
    assert orjson.loads(output)["ok"] is False


async def test_read_commands(settings: Settings, broker: Any, db: Db) -> None:
    async with running_worker(settings):
        await publish_events(broker, [order_event("order.paid", "ord_r", amount=777, fee=7)])

        async def applied() -> bool:
            return await count(db, "SELECT count(*) FROM events") == 1

        await wait_for(applied, what="event applied")
    code, output = await cli(settings, "orders", "show", "ord_r", "--json")
    assert code == 0, output
    order = orjson.loads(output)
    assert (order["id"], order["status"], order["amount"], order["currency"]) == (
        "ord_r",
        "paid",
        777,
        "MXN",
    )
    code, output = await cli(settings, "ledger", "balances", "--json")
    assert code == 0
    money = {"currency": "MXN", "livemode": False, "reading": ""}
    assert sorted(orjson.loads(output), key=lambda r: r["account"]) == [
        {"account": "conekta:fees", "type": "expense", "balance": 6, **money},
        {"account": "conekta:receivable", "type": "asset", "balance": 770, **money},
        {"account": "customer:cus_test", "type": "revenue", "balance": 777, **money},
        {"account": "tax:vat_on_fees", "type": "asset", "balance": 1, **money},
    ]
    assert (order["refunded_amount"], order["chargebacks"], order["livemode"]) == (0, [], False)
    code, output = await cli(settings, "ledger", "balances", "--json", "--mode", "live")
    assert (code, orjson.loads(output)) == (0, [])
    code, output = await cli(settings, "ledger", "balances", "--json", "--at", "1500000000")
    assert (code, orjson.loads(output)) == (0, [])  # paid_at is 1600000000
    code, output = await cli(settings, "ledger", "entries", "--csv", "--account", "conekta:fees")
    assert code == 0
    header, row = output.strip().splitlines()
    assert header.startswith("id,effective_at,recorded_at,livemode,business_key")
    # occurred_at last: the columns before it keep their places
    assert "fee:ord_r:ch_ord_r" in row and ",conekta:fees,MXN,6,2020-09-13T" in row
    code, output = await cli(settings, "ledger", "entries", "--json", "--since", "1600000001")
    assert (code, orjson.loads(output)) == (0, [])
    code, output = await cli(settings, "orders", "show", "ord_missing")
    assert code == 1
    assert "no order" in output


async def test_entries_cannot_be_edited_or_unbalanced(settings: Settings, db: Db) -> None:
    import asyncpg
    import pytest

    transaction_id = await db.fetchval(
        "INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency,"
        " livemode, event_id, effective_at, amount)"
        " VALUES ('k', 'payment', 'o', 'c', 'MXN', true, 'e', now(), 5) RETURNING id"
    )
    await db.execute(
        "INSERT INTO accounts (name, type, normal_side)"
        " VALUES ('a', 'asset', 'debit'), ('b', 'revenue', 'credit')"
    )
    with pytest.raises(asyncpg.exceptions.CheckViolationError, match="does not balance"):
        await db.execute(
            "INSERT INTO ledger_entries (transaction_id, account, currency, amount)"
            " VALUES ($1, 'a', 'MXN', 5)",
            transaction_id,
        )
    await db.execute(
        "INSERT INTO ledger_entries (transaction_id, account, currency, amount)"
        " VALUES ($1, 'a', 'MXN', 5), ($1, 'b', 'MXN', -5)",
        transaction_id,
    )
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="append-only"):
        await db.execute("UPDATE ledger_entries SET amount = 6")
