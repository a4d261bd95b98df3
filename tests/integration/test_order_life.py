"""The life of an order on real PostgreSQL: refunds, chargebacks, expiry, test vs live money,
through the store's apply path (and, for a chargeback before its payment, the whole worker)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg
import orjson
import pytest

from core.errors import UnknownCharge
from core.settings import Settings
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import ledger
from store import Store
from testkit import signing
from testkit.events import (
    charge_refunded_event,
    chargeback_event,
    order_event,
    order_event_document,
    order_of,
)
from testkit.processes import cli
from testkit.services import count, publish_events, running_worker
from testkit.wait import wait_for

Db: TypeAlias = "asyncpg.Connection[Any]"


def items(*bodies: bytes) -> list[Incoming]:
    return [Incoming(parse_order_event(b), b, None) for b in bodies]


async def mode_balances(store: Store, livemode: bool) -> dict[str, int]:
    rows = await ledger.balances(store, livemode=livemode)
    return {r["account"]: r["balance"] for r in rows if r["balance"]}


async def assert_verified(store: Store) -> None:
    failed = [(c.description, rows) for c, rows in await ledger.verify(store) if rows]
    assert not failed


PAID: dict[str, Any] = {"amount": 40_000, "fee": 1_000, "charge_id": "ch_1", "customer_id": "cus_1"}
R1, R2 = ("re_1", 15_000, 1_700_000_100), ("re_2", 25_000, 1_700_000_200)
# The fee of 1000 is its own movement, split by the 16 % IVA inside it (1000 / 1.16 = 862.07).
FEE_1000 = {"conekta:fees": 862, "tax:vat_on_fees": 138}


async def test_a_refund_by_two_event_types_posts_once(store: Store, db: Db) -> None:
    outcomes = await store.apply.batch(
        items(
            order_event("order.paid", "ord_r", created_at=1_700_000_000, **PAID),
            order_event(
                "order.partially_refunded", "ord_r", created_at=1_700_000_100, refunds=(R1,), **PAID
            ),
        )
    )
    assert outcomes.outcomes == ["applied", "applied"]
    later = items(
        charge_refunded_event(
            "ord_r",
            charge_id="ch_1",
            amount=40_000,
            fee=1_000,
            refunds=(R1, R2),
            created_at=1_700_000_200,
        ),
        order_event("order.refunded", "ord_r", created_at=1_700_000_201, refunds=(R1, R2), **PAID),
    )
    assert (await store.apply.batch(later)).outcomes == ["applied", "applied"]  # money, then status
    assert await count(db, "SELECT count(*) FROM ledger_transactions WHERE kind = 'refund'") == 2
    assert await mode_balances(store, False) == FEE_1000 | {"conekta:receivable": -1000}
    order = await ledger.order(store, "ord_r")
    assert order is not None
    assert (order["status"], order["refunded_amount"], order["livemode"]) == (
        "refunded",
        40000,
        False,
    )
    await assert_verified(store)
    # As of before the second refund, only the first had moved money.
    at = datetime.fromtimestamp(1_700_000_150, UTC)
    before = {r["account"]: r["balance"] for r in await ledger.balances(store, at=at)}
    assert before["customer:cus_1"] == 25_000


async def test_a_chargeback_waits_for_its_payment_then_is_lost(store: Store, db: Db) -> None:
    opened = chargeback_event(
        "charge.chargeback.created", "chbk_1", charge_id="ch_1", created_at=1_700_000_300
    )
    with pytest.raises(UnknownCharge):
        await store.apply.batch(items(opened))
    assert await count(db, "SELECT count(*) FROM events") == 0  # nothing of it was kept
    await store.apply.batch(items(order_event("order.paid", "ord_c", **PAID)))
    assert (await store.apply.batch(items(opened))).outcomes == ["applied"]
    assert await mode_balances(store, False) == FEE_1000 | {
        "conekta:receivable": -1_000,
        "conekta:disputed": 40_000,
        "customer:cus_1": 40_000,
    }
    await assert_verified(store)
    lost = chargeback_event(
        "charge.chargeback.lost", "chbk_1", charge_id="ch_1", created_at=1_700_000_400
    )
    review = chargeback_event(
        "charge.chargeback.under_review", "chbk_1", charge_id="ch_1", created_at=1_700_000_350
    )
    assert (await store.apply.batch(items(lost, review))).outcomes == ["applied", "stale"]
    assert await mode_balances(store, False) == FEE_1000 | {"conekta:receivable": -1_000}
    order = await ledger.order(store, "ord_c")
    assert order is not None
    assert order["status"] == "paid"
    assert [(c["id"], c["status"]) for c in order["chargebacks"]] == [("chbk_1", "lost")]
    # By Conekta's time: paid, opened, under review (late: stale), lost.
    assert [e["outcome"] for e in order["events"]] == ["applied", "applied", "stale", "applied"]
    await assert_verified(store)


async def test_a_won_chargeback_returns_the_money(store: Store) -> None:
    await store.apply.batch(items(order_event("order.paid", "ord_w", **PAID)))
    won = chargeback_event("charge.chargeback.won", "chbk_w", charge_id="ch_1")
    assert (await store.apply.batch(items(won))).outcomes == ["applied"]  # opened and won at once
    balances = await mode_balances(store, False)
    assert "conekta:disputed" not in balances
    assert balances["conekta:receivable"] == 39_000
    await assert_verified(store)


async def test_expiry_ends_unpaid_orders_and_is_stale_on_paid_ones(store: Store) -> None:
    outcomes = await store.apply.batch(
        items(
            order_event("order.pending_payment", "ord_e", created_at=100),
            order_event("order.expired", "ord_e", created_at=200),
            order_event("order.paid", "ord_p", created_at=100),
            order_event("order.canceled", "ord_p", created_at=300),
        )
    )
    assert outcomes.outcomes == ["applied", "applied", "applied", "stale"]
    assert [e.type for e in outcomes.contradictions] == ["order.canceled"]
    expired, paid = await ledger.order(store, "ord_e"), await ledger.order(store, "ord_p")
    assert expired is not None and paid is not None
    assert (expired["status"], paid["status"]) == ("expired", "paid")
    await assert_verified(store)


async def test_test_money_never_touches_live_balances(store: Store, db: Db) -> None:
    await store.apply.batch(
        items(
            order_event("order.paid", "ord_live", livemode=True, amount=700, fee=7),
            order_event("order.paid", "ord_test", livemode=False, amount=300, fee=3),
        )
    )
    assert await mode_balances(store, True) == {
        "conekta:fees": 6,  # 7 / 1.16 = 6.03
        "tax:vat_on_fees": 1,
        "conekta:receivable": 693,
        "customer:cus_test": 700,
    }
    assert (await mode_balances(store, False))["customer:cus_test"] == 300
    only_live = await store.apply.batch(
        items(order_event("order.paid", "ord_t2", livemode=False)), modes={True}
    )
    assert only_live.outcomes == ["other_mode"]
    assert await count(db, "SELECT count(*) FROM orders WHERE id = 'ord_t2'") == 0
    assert await count(db, "SELECT count(*) FROM outbox") == 2
    await assert_verified(store)


async def test_an_unknown_charge_is_retried_then_dead_lettered(
    settings: Settings, broker: Any, db: Db
) -> None:
    orphan = chargeback_event("charge.chargeback.created", "chbk_o", charge_id="ch_nowhere")
    async with running_worker(replace(settings, max_attempts=2)):
        await publish_events(broker, [orphan])

        async def dead_lettered() -> bool:
            return await count(db, "SELECT count(*) FROM dead_letters WHERE status = 'dead'") > 0

        await wait_for(dead_lettered, timeout=30, what="orphan chargeback dead-lettered")
    code, output = await cli(settings, "dlq", "list", "--json")
    assert code == 0, output
    [letter] = orjson.loads(output)
    assert (letter["kind"], letter["attempts"]) == ("unknown_charge", 2)


async def test_events_archived_before_this_handler_are_replayed_into_money(store: Store) -> None:
    """Refunds and chargebacks archived `ignored` by an older version: `events replay` applies
    them; a chargeback whose charge was never booked is counted and left as it was."""
    from domain.archive import unhandled_row
    from ops import events

    refund = order_event(
        "order.partially_refunded", "ord_old", created_at=1_700_000_100, refunds=(R1,), **PAID
    )
    opened = chargeback_event(
        "charge.chargeback.created", "chbk_old", charge_id="ch_1", created_at=1_700_000_200
    )
    orphan = chargeback_event(
        "charge.chargeback.created", "chbk_orphan", charge_id="ch_gone", created_at=1_700_000_300
    )
    await store.events.archive(
        [
            unhandled_row(orjson.loads(body), body, None, signing.signed_request(body))
            for body in (refund, opened, orphan)
        ]
    )
    totals = await events.replay(
        store, events.ReplayFilter(), "test", progress=lambda _: None, verifier=signing.verifier()
    )
    assert totals == {"applied": 2, "unknown_charge": 1}
    order = await ledger.order(store, "ord_old")
    assert order is not None
    assert [e["outcome"] for e in order["events"]] == ["applied", "applied"]  # was `ignored`
    assert await mode_balances(store, False) == FEE_1000 | {
        "conekta:receivable": 39_000 - 15_000 - 40_000,
        "conekta:disputed": 40_000,
        "customer:cus_1": 25_000,
    }
    await assert_verified(store)


async def test_an_unhandled_event_twice_in_one_batch_is_archived_once(store: Store, db: Db) -> None:
    from domain.archive import unhandled_row

    body = order_event("order.updated", "ord_u")
    await store.events.archive(
        [
            unhandled_row(orjson.loads(body), body, None),
            unhandled_row(orjson.loads(body), body, None),
        ]
    )
    await store.events.archive([unhandled_row(orjson.loads(body), body, None)])
    assert await count(db, "SELECT count(*) FROM events WHERE outcome = 'ignored'") == 1


async def test_migration_keeps_existing_money_valid_and_splits_modes() -> None:
    """Rows written before 0005: each transaction gets its mode (from its event), its amount and
    its effective date (the charge's paid_at), and mixed balances are split per mode."""
    import uuid

    from store import migrations
    from testkit.isolation import admin_execute, database_url_for, drop_database

    name = f"conekta_test_mig5_{uuid.uuid4().hex[:8]}"
    await admin_execute(f'CREATE DATABASE "{name}"')
    try:
        connection = await asyncpg.connect(database_url_for(name))
        try:
            for migration, sql in migrations.available():
                if migration < "0005":
                    await connection.execute(sql)
            await connection.execute(BEFORE_0005)
            [sql] = [
                sql for migration, sql in migrations.available() if migration.startswith("0005")
            ]
            await connection.execute(sql)
            rows = await connection.fetch(
                "SELECT business_key, livemode, amount, effective_at FROM ledger_transactions"
                " ORDER BY business_key"
            )
            assert [(r[0], r[1], r[2]) for r in rows] == [
                ("payment:o1:ch1", True, 100),
                ("payment:o2:ch2", False, 50),
            ]
            assert rows[0]["effective_at"] == datetime.fromtimestamp(1669233099, UTC)
            balances = await connection.fetch(
                "SELECT account, livemode, balance FROM balances ORDER BY 1, 2"
            )
            assert [tuple(r) for r in balances] == [
                ("conekta:fees", True, 5),
                ("conekta:receivable", False, 50),
                ("conekta:receivable", True, 95),
                ("customer:c1", False, -50),
                ("customer:c1", True, -100),
            ]
        finally:
            await connection.close()
    finally:
        await drop_database(name)


BEFORE_0005 = """
INSERT INTO events VALUES
 ('e1', 'order.paid', 'o1', true, now(), now(), now(), 'applied',
  convert_to('{"data":{"object":{"charges":{"data":[{"id":"ch1","paid_at":1669233099}]}}}}',
             'UTF8')),
 ('e2', 'order.paid', 'o2', false, now(), now(), now(), 'applied', convert_to('{}', 'UTF8'));
INSERT INTO orders VALUES ('o1', 'paid', 100, 'MXN', 'c1', true, 'e1', now(), now()),
                          ('o2', 'paid', 50, 'MXN', 'c1', false, 'e2', now(), now());
INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency, event_id)
VALUES ('payment:o1:ch1', 'payment', 'o1', 'ch1', 'MXN', 'e1'),
       ('payment:o2:ch2', 'payment', 'o2', 'ch2', 'MXN', 'e2');
INSERT INTO ledger_entries (transaction_id, account, currency, amount)
SELECT t.id, v.account, 'MXN', v.amount FROM ledger_transactions t
JOIN (VALUES ('e1', 'conekta:receivable', 95), ('e1', 'conekta:fees', 5),
             ('e1', 'customer:c1', -100), ('e2', 'conekta:receivable', 50),
             ('e2', 'customer:c1', -50)) AS v (event_id, account, amount)
  ON v.event_id = t.event_id;
INSERT INTO balances VALUES ('conekta:receivable', 'MXN', 'debit', 145),
                            ('conekta:fees', 'MXN', 'debit', 5),
                            ('customer:c1', 'MXN', 'credit', -150);
"""


async def test_a_refund_returns_money_to_the_customer_the_payment_was_booked_for(
    store: Store,
) -> None:
    """Conekta may add a customer id after the payment (e-mail only then): the refund still
    returns the money to the account the payment credited."""
    money = {"amount": 1_000, "fee": 0, "charge_id": "ch_k"}
    await store.apply.batch(
        items(order_event("order.paid", "ord_k", customer_id=None, email="A@B.mx", **money))
    )
    refund = order_event(
        "order.refunded", "ord_k", customer_id="cus_later", refunds=(("re_k", 1_000, 5),), **money
    )
    assert (await store.apply.batch(items(refund))).outcomes == ["applied"]
    assert await mode_balances(store, False) == {}  # the customer a@b.mx is back to zero
    await assert_verified(store)


async def test_a_pending_refund_is_shown_then_posted_and_warnings_name_what_to_look_at(
    store: Store,
) -> None:
    """A pending refund is recorded, not posted; a list with has_more flags its order; a charge
    without fee, and paid charges above their order, are warned about (not failures)."""
    pending = order_event_document(
        "order.partially_refunded",
        "ord_pr",
        created_at=1_700_000_100,
        refunds=(("re_p", 1_000, 1_700_000_100, "pending"),),
        **PAID,
    )
    order_of(pending)["charges"]["has_more"] = True
    no_fee = order_event("order.paid", "ord_nf", charge_id="ch_nf", fee=None)
    overpaid = order_event_document("order.paid", "ord_op", charge_id="ch_op", amount=5_000)
    order_of(overpaid)["amount"] = 4_000  # one of several cash references paid in full
    applied = await store.apply.batch(items(orjson.dumps(pending), no_fee, orjson.dumps(overpaid)))
    assert applied.outcomes == ["applied", "applied", "applied"]
    assert [e.order_id for e in applied.overpaid] == ["ord_op"]
    order = await ledger.order(store, "ord_pr")
    assert order is not None
    assert [(r["id"], r["state"], r["amount"]) for r in order["refunds"]] == [
        ("re_p", "pending", 1_000)
    ]
    assert order["refunded_amount"] == 0  # not in the ledger yet
    assert [f["reason"] for f in order["reconcile"]] == ["charges has_more"]
    warned = {c.query: rows for c, rows in await ledger.warnings(store) if rows}
    assert [r["charge_id"] for r in warned["warn_fee_unknown"]] == ["ch_nf"]  # paid in 2020
    assert [(r["order_id"], r["paid"]) for r in warned["warn_overpaid_orders"]] == [
        ("ord_op", 5_000)
    ]
    assert [r["order_id"] for r in warned["warn_reconcile_flags"]] == ["ord_pr"]
    await assert_verified(store)  # warnings are not failures
    moved = order_event(
        "order.partially_refunded",
        "ord_pr",
        created_at=1_700_000_200,
        refunds=(("re_p", 1_000, 1_700_000_100, "succeeded"),),
        **PAID,
    )
    assert (await store.apply.batch(items(moved))).outcomes == ["applied"]
    order = await ledger.order(store, "ord_pr")
    assert order is not None and order["refunded_amount"] == 1_000
    assert [r["state"] for r in order["refunds"]] == ["moved"]
    await assert_verified(store)
