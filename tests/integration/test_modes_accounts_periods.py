"""Issue 22 (B) on real PostgreSQL: orders and chargebacks per mode, the chart of accounts, the
ledger's time zone and closed months; and the migration (0015) that brings a shop's ledger there
without changing any posted entry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import orjson
import pytest

from core.settings import Settings
from domain import accounts
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import audit, ledger
from store import Store, migrations
from testkit.events import chargeback_event, order_event
from testkit.isolation import admin_execute, database_url_for, drop_database
from testkit.processes import cli
from testkit.services import VIEWER, basic
from tests.integration.test_console import browser_like, log_in

Db: TypeAlias = "asyncpg.Connection[Any]"

BEFORE_0015 = """
INSERT INTO events (event_id, type, order_id, livemode, created_at, received_at, applied_at,
                    outcome, body)
VALUES ('e1', 'order.paid', 'o1', true, now(), now(), now(), 'applied', '\\x7b7d'),
       ('e2', 'charge.chargeback.created', 'o1', true, now(), now(), now(), 'applied', '\\x7b7d');
INSERT INTO event_ids (event_id) VALUES ('e1'), ('e2');
INSERT INTO orders (id, status, amount, currency, customer_key, livemode, last_event_id,
                    last_event_created_at)
VALUES ('o1', 'paid', 100, 'MXN', 'cus_1', true, 'e1', now()),
       ('o2', 'paid', 50, 'MXN', 'ana@example.com', false, 'e1', now());
INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency, livemode,
                                 event_id, effective_at, amount)
VALUES ('payment:o1:ch1', 'payment', 'o1', 'ch1', 'MXN', true, 'e1', now(), 100),
       ('chargeback:cb1:opened', 'chargeback_opened', 'o1', 'ch1', 'MXN', true, 'e2', now(), 100),
       ('payment:o2:ch2', 'payment', 'o2', 'ch2', 'MXN', false, 'e1', now(), 50);
INSERT INTO ledger_entries (transaction_id, account, currency, amount)
SELECT t.id, v.account, 'MXN', v.amount FROM ledger_transactions t
JOIN (VALUES ('payment:o1:ch1', 'conekta:receivable', 95), ('payment:o1:ch1', 'conekta:fees', 5),
             ('payment:o1:ch1', 'customer:cus_1', -100),
             ('chargeback:cb1:opened', 'conekta:disputed', 100),
             ('chargeback:cb1:opened', 'conekta:receivable', -100),
             ('payment:o2:ch2', 'conekta:receivable', 50),
             ('payment:o2:ch2', 'customer:ana@example.com', -50)) AS v (key, account, amount)
  ON v.key = t.business_key;
INSERT INTO balances (account, currency, livemode, normal_side, balance)
SELECT e.account, e.currency, t.livemode,
       CASE WHEN e.account LIKE 'customer:%' THEN 'credit' ELSE 'debit' END, sum(e.amount)
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id GROUP BY 1, 2, 3;
INSERT INTO chargebacks (id, livemode, charge_id, order_id, status, amount, currency,
                         last_event_id, last_event_created_at)
VALUES ('cb1', true, 'ch1', 'o1', 'open', 100, 'MXN', 'e2', now());
"""

LEDGER_ROWS = """
SELECT t.business_key, t.kind, t.livemode, t.effective_at, t.recorded_at, t.amount, e.account,
       e.amount AS entry, e.id
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id ORDER BY e.id
"""


async def test_the_migration_changes_no_posted_entry_and_declares_every_account() -> None:
    name = f"conekta_test_mig15_{uuid.uuid4().hex[:8]}"
    await admin_execute(f'CREATE DATABASE "{name}"')
    try:
        connection = await asyncpg.connect(database_url_for(name))
        try:
            # The ledger as it stood before 0014 (issue 22 A's money rules) and 0015; both run.
            later = [(m, sql) for m, sql in migrations.available() if m >= "0014"]
            for migration, sql in migrations.available():
                if migration < "0014":
                    await connection.execute(sql)
            await connection.execute(BEFORE_0015)
            ledger = [tuple(r) for r in await connection.fetch(LEDGER_ROWS)]
            balances = await connection.fetch(
                "SELECT account, currency, livemode, balance FROM balances ORDER BY 1, 2, 3"
            )
            for _, sql in later:
                await connection.execute(sql)

            assert [tuple(r) for r in await connection.fetch(LEDGER_ROWS)] == ledger
            assert (
                await connection.fetch(
                    "SELECT account, currency, livemode, balance FROM balances ORDER BY 1, 2, 3"
                )
                == balances
            )
            declared = await connection.fetch("SELECT name, type, normal_side FROM accounts")
            assert {(r["name"], r["type"], r["normal_side"]) for r in declared} == {
                (n, a.type.value, a.normal_side)
                for n in {
                    "conekta:receivable",
                    "conekta:fees",
                    "conekta:disputed",
                    "customer:cus_1",
                    "customer:ana@example.com",
                }
                for a in [accounts.declare(n)]
            }
            # The same ids may now exist in the other mode, and chargebacks follow their order's.
            await connection.execute(
                "INSERT INTO orders (id, status, amount, currency, customer_key, livemode,"
                " last_event_id, last_event_created_at)"
                " VALUES ('o1', 'pending_payment', 100, 'MXN', NULL, false, 'e3', now())"
            )
            await connection.execute(
                "INSERT INTO chargebacks (id, livemode, charge_id, order_id, status, amount,"
                " currency, last_event_id, last_event_created_at, conekta_status, opened_at)"
                " VALUES ('cb1', false, 'ch1', 'o1', 'open', 100, 'MXN', 'e4', now(), 'open',"
                " now())"
            )
            assert await connection.fetchval("SELECT count(*) FROM orders WHERE id = 'o1'") == 2
        finally:
            await connection.close()
    finally:
        await drop_database(name)


def items(*bodies: bytes) -> list[Incoming]:
    return [Incoming(parse_order_event(b), b, None) for b in bodies]


async def outcomes(store: Store, *bodies: bytes) -> list[str]:
    return list((await store.apply.batch(items(*bodies))).outcomes)


async def mode_balances(store: Store, livemode: bool, at: datetime | None = None) -> dict[str, int]:
    rows = await ledger.balances(store, at=at, livemode=livemode)
    return {r["account"]: r["balance"] for r in rows if r["balance"]}


async def assert_verified(store: Store) -> None:
    failed = [(c.description, rows) for c, rows in await ledger.verify(store) if rows]
    assert not failed


async def test_the_same_order_id_in_test_and_live_mode_never_meets(
    store: Store, settings: Settings, console: str
) -> None:
    test_paid = order_event(
        "order.paid", "ord_m", created_at=1_700_000_100, charge_id="ch_t", customer_id="cus_t"
    )
    live_pending = order_event(
        "order.pending_payment", "ord_m", created_at=1_700_000_000, livemode=True, charge_id="ch_l"
    )
    # The live order's own first event: not stale against the test order's newer `paid`.
    assert await outcomes(store, test_paid, live_pending) == ["applied", "applied"]
    live = await ledger.order(store, "ord_m")
    assert live is not None and (live["livemode"], live["status"]) == (True, "pending_payment")
    test = await ledger.order(store, "ord_m", livemode=False)
    assert test is not None and (test["livemode"], test["status"]) == (False, "paid")

    live_paid = order_event(
        "order.paid",
        "ord_m",
        created_at=1_700_000_200,
        livemode=True,
        charge_id="ch_l",
        amount=30_000,
        fee=900,
        customer_id="cus_l",
    )
    chargebacks = [
        chargeback_event("charge.chargeback.created", "cb_m", charge_id=c, livemode=live)
        for c, live in (("ch_t", False), ("ch_l", True))
    ]
    assert await outcomes(store, live_paid, *chargebacks) == ["applied"] * 3
    assert await mode_balances(store, False) == {
        "conekta:receivable": 9_500 - 10_000,
        "conekta:fees": 431,  # the fee's IVA apart (issue 22 A): 500 / 1.16
        "tax:vat_on_fees": 69,
        "conekta:disputed": 10_000,
        "customer:cus_t": 10_000,
    }
    assert await mode_balances(store, True) == {
        "conekta:receivable": 29_100 - 30_000,
        "conekta:fees": 776,  # 900 / 1.16
        "tax:vat_on_fees": 124,
        "conekta:disputed": 30_000,
        "customer:cus_l": 30_000,
    }
    await assert_verified(store)
    for mode, livemode, amount, events in (("live", True, 30_000, 3), ("test", False, 10_000, 2)):
        code, out = await cli(settings, "orders", "show", "ord_m", "--mode", mode, "--json")
        assert code == 0, out
        shown = orjson.loads(out)
        assert (shown["livemode"], shown["amount"]) == (livemode, amount)
        assert [c["id"] for c in shown["chargebacks"]] == ["cb_m"]
        assert len(shown["events"]) == events  # each mode's own (and its chargeback's)
        async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
            async with http.get(f"{console}/api/v1/orders/ord_m", params={"mode": mode}) as r:
                detail = await r.json()
            assert (detail["livemode"], detail["amount"]) == (livemode, amount)
            assert {p["business_key"] for p in detail["postings"]} == {
                f"payment:ord_m:ch_{mode[0]}",
                f"fee:ord_m:ch_{mode[0]}",  # the fee is its own movement (issue 22 A)
                "chargeback:cb_m:opened",
            }
        async with browser_like() as page_http:
            await log_in(page_http, console, VIEWER)
            async with page_http.get(f"{console}/orders/ord_m", params={"mode": mode}) as r:
                assert r.status == 200 and f"{amount // 100:,}.00" in await r.text()
    code, out = await cli(settings, "orders", "show", "ord_m", "--json")
    assert code == 0 and orjson.loads(out)["livemode"] is True  # live first
    async with (
        aiohttp.ClientSession(headers=basic(VIEWER)) as http,
        http.get(f"{console}/api/v1/orders/ord_m", params={"mode": "dev"}) as r,
    ):
        assert r.status == 400


async def test_an_order_only_in_test_mode_is_shown_without_asking(store: Store) -> None:
    await outcomes(store, order_event("order.paid", "ord_t"))
    shown = await ledger.order(store, "ord_t")
    assert shown is not None and shown["livemode"] is False
    assert await ledger.order(store, "ord_t", livemode=True) is None


async def test_balances_carry_the_account_type_and_read_a_negative_receivable(
    store: Store, settings: Settings
) -> None:
    await outcomes(
        store,
        order_event("order.paid", "ord_a", amount=10_000, fee=500),
        order_event(
            "order.refunded",
            "ord_a",
            created_at=1_700_000_100,
            amount=10_000,
            fee=500,
            refunds=(("re_a", 10_000, 1_700_000_100),),
        ),
    )
    code, out = await cli(settings, "ledger", "balances", "--json")
    assert code == 0, out
    rows = {r["account"]: r for r in orjson.loads(out)}
    assert {a: (r["type"], r["balance"]) for a, r in rows.items()} == {
        "conekta:receivable": ("asset", -500),
        "conekta:fees": ("expense", 431),  # the fee's IVA apart: 500 / 1.16
        "tax:vat_on_fees": ("asset", 69),
        "customer:cus_test": ("revenue", 0),
    }
    assert rows["conekta:receivable"]["reading"] == "owed to Conekta"
    code, out = await cli(settings, "ledger", "balances")
    assert "owed to Conekta" in out and "asset" in out


async def test_a_closed_month_never_changes_and_a_late_movement_keeps_its_date(
    store: Store, settings: Settings, db: Db
) -> None:
    # Paid 2020-09-13 (the builders' paid_at); refunded on 2020-09-30 22:00 in Mexico City
    # (UTC-5 then), which is already October in UTC: the month is Mexico City's.
    refund_at = int(datetime(2020, 10, 1, 3, tzinfo=UTC).timestamp())
    await outcomes(store, order_event("order.paid", "ord_c", amount=10_000, fee=500))
    code, out = await cli(settings, "ledger", "close", "--month", "2020-09", "--yes", "--json")
    assert code == 0, out
    closed = orjson.loads(out)
    assert closed["closed_before"] == "2020-10-01T05:00:00+00:00"
    inside = ["2020-09-30", "2020-09-30T23:59:59", "2020-10-01T04:59:59Z"]
    before = {at: await _cli_balances(settings, at) for at in inside}
    assert before["2020-09-30"]["conekta:receivable"] == 9_500

    late_refund = order_event(
        "order.refunded",
        "ord_c",
        created_at=refund_at + 3_600,
        amount=10_000,
        fee=500,
        refunds=(("re_c", 4_000, refund_at),),
    )
    assert await outcomes(store, late_refund) == ["applied"]
    assert {at: await _cli_balances(settings, at) for at in inside} == before
    after = await _cli_balances(settings, "2020-10-01")  # October's first instant, Mexico City
    assert after["conekta:receivable"] == 5_500
    code, out = await cli(
        settings, "ledger", "entries", "--account", "conekta:receivable", "--json"
    )
    refund = [e for e in orjson.loads(out) if e["kind"] == "refund"]
    assert [(e["effective_at"], e["occurred_at"]) for e in refund] == [
        ("2020-10-01T05:00:00+00:00", "2020-10-01T03:00:00+00:00")
    ]
    await assert_verified(store)
    # Closed once; not a month not over yet; the database refuses a posting inside it anyway.
    code, out = await cli(settings, "ledger", "close", "--month", "2020-08", "--yes")
    assert code != 0 and "closed already" in out
    code, out = await cli(settings, "ledger", "close", "--month", "2999-01", "--yes")
    assert code != 0 and "not over yet" in out
    with pytest.raises(asyncpg.CheckViolationError, match="closed period"):
        await db.execute(
            "INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency,"
            " livemode, event_id, effective_at, amount)"
            " VALUES ('x', 'payment', 'ord_c', 'ch', 'MXN', false, 'e', '2020-09-15', 1)"
        )
    code, out = await cli(settings, "ledger", "closes", "--json")
    assert [(c["month"], c["closed_before"]) for c in orjson.loads(out)] == [
        ("2020-09", "2020-10-01T05:00:00+00:00")
    ]
    [entry] = [e for e in await audit.entries(store) if e["action"] == "ledger.close"]
    assert entry["target"] == "2020-09" and entry["count"] == 1


async def _cli_balances(settings: Settings, at: str) -> dict[str, int]:
    code, out = await cli(settings, "ledger", "balances", "--at", at, "--json")
    assert code == 0, out
    return {r["account"]: r["balance"] for r in orjson.loads(out)}


async def test_tz_reads_a_bare_date_in_another_zone(store: Store, settings: Settings) -> None:
    await outcomes(store, order_event("order.paid", "ord_z", amount=10_000, fee=500))
    # paid_at 1_600_000_000 is 2020-09-13T12:26:40Z; 20:00 in Mexico City is 01:00Z the next
    # day (after it), 20:00 in Tokyo 11:00Z (before it).
    assert await _cli_balances(settings, "2020-09-13") == {}  # its start in Mexico City: 05:00Z
    assert (await _cli_balances(settings, "2020-09-13T20:00"))["conekta:fees"] == 431
    code, out = await cli(
        settings, "ledger", "balances", "--at", "2020-09-13T20:00", "--tz", "Asia/Tokyo", "--json"
    )
    assert code == 0 and orjson.loads(out) == []
    code, out = await cli(
        settings, "ledger", "entries", "--since", "2020-09-13", "--until", "2020-09-14", "--json"
    )
    assert code == 0 and len(orjson.loads(out)) == 2 + 3  # the payment's entries, the fee's
    code, out = await cli(settings, "ledger", "balances", "--tz", "Mars/Olympus")
    assert code != 0 and "not a time zone" in out
