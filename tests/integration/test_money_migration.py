"""A shop's existing ledger (postings made before the money rules of migration 0014: fees inside
payments, refunds without status, a chargeback withholding the whole charge) migrates without
any posted entry changing, and then follows the new rules: no second fee, refunds and
chargebacks on the customer its payment credited, the chargeback's target adjusted once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import asyncpg
import orjson
import pytest

from core import database
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import ledger
from store import Store, migrations
from testkit.events import chargeback_event, order_event, order_event_document
from testkit.isolation import database_url_for, drop_database

Db: TypeAlias = "asyncpg.Connection[Any]"
PAID_AT = 1_600_000_000
# What the code before 0014 posted, as it posted it (debit +, credit -).
LEGACY = [
    # business key, kind, order, charge, event, effective (unix), amount, entries
    ("payment:ord_l:ch_l", "payment", "ord_l", "ch_l", "e" * 24, PAID_AT, 20_000,
     {"conekta:receivable": 19_204, "conekta:fees": 796, "customer:buyer@example.com": -20_000}),
    ("refund:ord_l:re_1", "refund", "ord_l", "ch_l", "f" * 24, PAID_AT + 100, 5_000,
     {"customer:buyer@example.com": 5_000, "conekta:receivable": -5_000}),
    ("chargeback:chbk_l:opened", "chargeback_opened", "ord_l", "ch_l", "a" * 24, PAID_AT + 200,
     20_000, {"conekta:disputed": 20_000, "conekta:receivable": -20_000}),
    ("payment:ord_z:ch_z", "payment", "ord_z", "ch_z", "b" * 24, PAID_AT, 3_000,
     {"conekta:receivable": 3_000, "customer:cus_z": -3_000}),
    ("payment:ord_n:ch_n", "payment", "ord_n", "ch_n", "c" * 24, PAID_AT, 4_000,
     {"conekta:receivable": 4_000, "customer:cus_n": -4_000}),
]  # fmt: skip
# Every column a posting had before (later migrations may add some, e.g. occurred_at).
SNAPSHOT = {
    "transactions": "SELECT id, business_key, kind, order_id, charge_id, currency, livemode,"
    " event_id, effective_at, recorded_at, amount FROM ledger_transactions ORDER BY id",
    "entries": "SELECT id, transaction_id, account, currency, amount FROM ledger_entries"
    " ORDER BY id",
    "balances": "SELECT account, currency, livemode, balance FROM balances ORDER BY 1, 2, 3",
}


@pytest.fixture
async def legacy_url() -> AsyncIterator[str]:
    """A database migrated up to 0013 only, holding a ledger the old code wrote."""
    name = f"conekta_test_legacy_{uuid.uuid4().hex[:8]}"
    url = database_url_for(name)
    await database.ensure_database(url)
    db: Db = await asyncpg.connect(url)
    try:
        await db.execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for name_, sql in migrations.available():
            if name_ < "0014":
                await db.execute(sql)
                await db.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name_)
        await _old_ledger(db)
    finally:
        await db.close()
    yield url
    await drop_database(name)


async def _old_ledger(db: Db) -> None:
    for order_id, customer in (("ord_l", "cus_later"), ("ord_z", "cus_z"), ("ord_n", "cus_n")):
        # The order row says cus_later: a later event changed it; the payment credited the
        # e-mail account, and that is where its refunds and chargebacks must go.
        await db.execute(
            "INSERT INTO orders (id, status, amount, currency, customer_key, livemode,"
            " last_event_id, last_event_created_at) VALUES ($1, 'paid', 20000, 'MXN', $2, false,"
            " $3, to_timestamp($4))",
            order_id, customer, "d" * 24, PAID_AT,
        )  # fmt: skip
    zero_fee = order_event_document(
        "order.paid", "ord_z", event_id="b" * 24, amount=3_000, fee=0, charge_id="ch_z"
    )
    await db.execute(
        "INSERT INTO events (event_id, type, order_id, livemode, created_at, outcome, body)"
        " VALUES ($1, 'order.paid', 'ord_z', false, now(), 'applied', $2)",
        "b" * 24, orjson.dumps(zero_fee),
    )  # fmt: skip
    for key, kind, order_id, charge_id, event_id, at, amount, entries in LEGACY:
        tx = await db.fetchval(
            "INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency,"
            " livemode, event_id, effective_at, amount) VALUES ($1, $2, $3, $4, 'MXN', false, $5,"
            " to_timestamp($6), $7) RETURNING id",
            key, kind, order_id, charge_id, event_id, at, amount,
        )  # fmt: skip
        # One statement per transaction: the trigger checks each statement's transactions balance.
        await db.execute(
            "INSERT INTO ledger_entries (transaction_id, account, currency, amount)"
            " SELECT $1, account, 'MXN', amount FROM unnest($2::text[], $3::bigint[])"
            " AS e (account, amount)",
            tx, list(entries), list(entries.values()),
        )  # fmt: skip
        for account, cents in entries.items():
            await db.execute(
                "INSERT INTO balances (account, currency, livemode, normal_side, balance)"
                " VALUES ($1, 'MXN', false, $2, $3) ON CONFLICT (account, currency, livemode)"
                " DO UPDATE SET balance = balances.balance + EXCLUDED.balance",
                account, "credit" if account.startswith("customer:") else "debit", cents,
            )  # fmt: skip
    await db.execute(
        "INSERT INTO chargebacks (id, livemode, charge_id, order_id, status, amount, currency,"
        " last_event_id, last_event_created_at) VALUES ('chbk_l', false, 'ch_l', 'ord_l', 'open',"
        " 20000, 'MXN', $1, to_timestamp($2))",
        "a" * 24, PAID_AT + 200,
    )  # fmt: skip


async def _snapshot(db: Db) -> dict[str, list[dict[str, Any]]]:
    return {name: [dict(r) for r in await db.fetch(sql)] for name, sql in SNAPSHOT.items()}


def _item(body: bytes) -> Incoming:
    return Incoming(parse_order_event(body), body, None)


async def test_an_existing_ledger_migrates_and_keeps_every_entry(legacy_url: str) -> None:
    db: Db = await asyncpg.connect(legacy_url)
    try:
        before = await _snapshot(db)
        assert await migrations.migrate(legacy_url) == [
            n for n, _ in migrations.available() if n >= "0014"
        ]
        assert await _snapshot(db) == before  # no posted entry, transaction or balance changed
        charges = {
            r["id"]: (r["customer_key"], r["fee"])
            for r in await db.fetch("SELECT id, customer_key, fee FROM charges")
        }
        assert charges == {
            "ch_l": ("buyer@example.com", 796),  # the fee inside its payment: known
            "ch_z": ("cus_z", 0),  # no fee entry, its raw event says 0
            "ch_n": ("cus_n", None),  # no fee entry, no event: unknown
        }
        refund = await db.fetchrow("SELECT id, status, amount FROM refunds")
        assert refund is not None and tuple(refund) == ("re_1", None, 5_000)
        chargeback = await db.fetchrow("SELECT conekta_status, opened_at FROM chargebacks")
        assert chargeback is not None and chargeback["conekta_status"] == "open"
        assert int(chargeback["opened_at"].timestamp()) == PAID_AT + 200
    finally:
        await db.close()
    async with Store.open(legacy_url) as store:
        paid = {"charge_id": "ch_l", "amount": 20_000, "fee": 796, "customer_id": "cus_later"}
        second = ("re_2", 3_000, PAID_AT + 150)  # before the chargeback: lowers its target
        applied = await store.apply.batch(
            [
                _item(order_event("order.paid", "ord_l", created_at=PAID_AT + 300, **paid)),
                _item(
                    order_event(
                        "order.partially_refunded",
                        "ord_l",
                        created_at=PAID_AT + 310,
                        refunds=(("re_1", 5_000, PAID_AT + 100), second),
                        **paid,
                    )
                ),
                _item(
                    chargeback_event(
                        "charge.chargeback.lost",
                        "chbk_l",
                        charge_id="ch_l",
                        created_at=PAID_AT + 400,
                        opened_at=PAID_AT + 200,
                    )
                ),
                _item(
                    order_event(
                        "order.paid",
                        "ord_n",
                        charge_id="ch_n",
                        amount=4_000,
                        fee=300,
                        customer_id="cus_n",
                        created_at=PAID_AT + 500,
                    )
                ),
            ]
        )
        # ord_l's payment already holds its fee, but its chargeback withheld the whole charge
        # although re_1 came before it: the first event of the charge adjusts it, once; then a
        # refund, the chargeback lost; ord_n's fee arrives: it posts
        assert applied.outcomes == ["applied", "applied", "applied", "applied"]
        keys = {r["business_key"]: r["kind"] for r in await store.orders.postings("ord_l", False)}
        assert keys == {
            "payment:ord_l:ch_l": "payment",  # the old ledger: payment, refund, opened
            "refund:ord_l:re_1": "refund",
            "chargeback:chbk_l:opened": "chargeback_opened",
            "chargeback:chbk_l:adjusted": "chargeback_adjusted",  # 20000 -> 15000: re_1 before
            "refund:ord_l:re_2": "refund",  # to the e-mail account its payment credited
            "chargeback:chbk_l:adjusted:3": "chargeback_adjusted",  # -> 12000: re_2 before too
            "chargeback:chbk_l:lost": "chargeback_lost",  # the 12000 to the customer
        }
        balances = {r["account"]: r["balance"] for r in await ledger.balances(store)}
        assert balances == {
            "conekta:receivable": 19_204 + 3_000 + 4_000 - 300 - 5_000 - 3_000 - 12_000,
            "conekta:fees": 796 + 259,  # the legacy fee as it was; 300 split: 259 + 41
            "tax:vat_on_fees": 41,
            "conekta:disputed": 0,
            # -20000 paid, +5000 +3000 refunded, +12000 lost (20000 less both refunds)
            "customer:buyer@example.com": 0,
            "customer:cus_z": 3_000,
            "customer:cus_n": 4_000,
        }
        failed = [(c.description, rows) for c, rows in await ledger.verify(store) if rows]
        assert not failed
        warnings = {c.query: rows for c, rows in await ledger.warnings(store) if rows}
        assert warnings == {}  # ch_n's fee came; ch_z's is known to be 0
