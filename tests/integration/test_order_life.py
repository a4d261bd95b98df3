"""The life of an order on real PostgreSQL: refunds, chargebacks, expiry, test vs live money,
through the store's apply path (and, for a chargeback before its payment, the whole worker)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg
import orjson
import pytest

from core import topology
from core.errors import UnknownCharge
from core.settings import Settings
from domain.order_event import parse_order_event
from domain.plan import Incoming
from testkit.events import charge_refunded_event, chargeback_event, order_event
from testkit.processes import cli
from testkit.services import count, publish_events, running_worker
from testkit.wait import wait_for
from worker import reports
from worker.store import Store

Db: TypeAlias = "asyncpg.Connection[Any]"


def items(*bodies: bytes) -> list[Incoming]:
    return [Incoming(parse_order_event(b), b, None) for b in bodies]


async def mode_balances(store: Store, livemode: bool) -> dict[str, int]:
    rows = await reports.balances(store, livemode=livemode)
    return {r["account"]: r["balance"] for r in rows if r["balance"]}


async def assert_verified(store: Store) -> None:
    failed = [(c.description, rows) for c, rows in await reports.verify(store) if rows]
    assert not failed


PAID: dict[str, Any] = {"amount": 40_000, "fee": 1_000, "charge_id": "ch_1", "customer_id": "cus_1"}
R1, R2 = ("re_1", 15_000, 1_700_000_100), ("re_2", 25_000, 1_700_000_200)


async def test_a_refund_by_two_event_types_posts_once(store: Store, db: Db) -> None:
    outcomes = await store.apply_batch(
        items(
            order_event("order.paid", "ord_r", created_at=1_700_000_000, **PAID),
            order_event(
                "order.partially_refunded", "ord_r", created_at=1_700_000_100, refunds=(R1,), **PAID
            ),
        )
    )
    assert outcomes == ["applied", "applied"]
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
    assert await store.apply_batch(later) == ["applied", "applied"]  # money, then status
    assert await count(db, "SELECT count(*) FROM ledger_transactions WHERE kind = 'refund'") == 2
    assert await mode_balances(store, False) == {"conekta:fees": 1000, "conekta:receivable": -1000}
    order = await reports.order(store, "ord_r")
    assert order is not None
    assert (order["status"], order["refunded_amount"], order["livemode"]) == (
        "refunded",
        40000,
        False,
    )
    await assert_verified(store)
    # As of before the second refund, only the first had moved money.
    at = datetime.fromtimestamp(1_700_000_150, UTC)
    before = {r["account"]: r["balance"] for r in await reports.balances(store, at=at)}
    assert before["customer:cus_1"] == 25_000


async def test_a_chargeback_waits_for_its_payment_then_is_lost(store: Store, db: Db) -> None:
    opened = chargeback_event(
        "charge.chargeback.created", "chbk_1", charge_id="ch_1", created_at=1_700_000_300
    )
    with pytest.raises(UnknownCharge):
        await store.apply_batch(items(opened))
    assert await count(db, "SELECT count(*) FROM events") == 0  # nothing of it was kept
    await store.apply_batch(items(order_event("order.paid", "ord_c", **PAID)))
    assert await store.apply_batch(items(opened)) == ["applied"]
    assert await mode_balances(store, False) == {
        "conekta:receivable": -1_000,
        "conekta:fees": 1_000,
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
    assert await store.apply_batch(items(lost, review)) == ["applied", "stale"]
    assert await mode_balances(store, False) == {
        "conekta:receivable": -1_000,
        "conekta:fees": 1_000,
    }
    order = await reports.order(store, "ord_c")
    assert order is not None
    assert order["status"] == "paid"
    assert [(c["id"], c["status"]) for c in order["chargebacks"]] == [("chbk_1", "lost")]
    # By Conekta's time: paid, opened, under review (late: stale), lost.
    assert [e["outcome"] for e in order["events"]] == ["applied", "applied", "stale", "applied"]
    await assert_verified(store)


async def test_a_won_chargeback_returns_the_money(store: Store) -> None:
    await store.apply_batch(items(order_event("order.paid", "ord_w", **PAID)))
    won = chargeback_event("charge.chargeback.won", "chbk_w", charge_id="ch_1")
    assert await store.apply_batch(items(won)) == ["applied"]  # opened and won at once
    balances = await mode_balances(store, False)
    assert "conekta:disputed" not in balances
    assert balances["conekta:receivable"] == 39_000
    await assert_verified(store)


async def test_expiry_ends_unpaid_orders_and_is_stale_on_paid_ones(store: Store) -> None:
    outcomes = await store.apply_batch(
        items(
            order_event("order.pending_payment", "ord_e", created_at=100),
            order_event("order.expired", "ord_e", created_at=200),
            order_event("order.paid", "ord_p", created_at=100),
            order_event("order.canceled", "ord_p", created_at=300),
        )
    )
    assert outcomes == ["applied", "applied", "applied", "stale"]
    expired, paid = await reports.order(store, "ord_e"), await reports.order(store, "ord_p")
    assert expired is not None and paid is not None
    assert (expired["status"], paid["status"]) == ("expired", "paid")
    await assert_verified(store)


async def test_test_money_never_touches_live_balances(store: Store, db: Db) -> None:
    await store.apply_batch(
        items(
            order_event("order.paid", "ord_live", livemode=True, amount=700, fee=7),
            order_event("order.paid", "ord_test", livemode=False, amount=300, fee=3),
        )
    )
    assert await mode_balances(store, True) == {
        "conekta:fees": 7,
        "conekta:receivable": 693,
        "customer:cus_test": 700,
    }
    assert (await mode_balances(store, False))["customer:cus_test"] == 300
    only_live = await store.apply_batch(
        items(order_event("order.paid", "ord_t2", livemode=False)), modes={True}
    )
    assert only_live == ["other_mode"]
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
            channel = await broker.channel()
            queue = await channel.declare_queue(topology.ORDERS_DLQ, passive=True)
            await channel.close()
            return bool(queue.declaration_result.message_count)

        await wait_for(dead_lettered, timeout=30, what="orphan chargeback dead-lettered")
    code, output = await cli(settings, "dlq", "list", "--json")
    assert code == 0, output
    [letter] = orjson.loads(output)
    assert (letter["kind"], letter["attempts"]) == ("unknown_charge", 2)


async def test_events_archived_before_this_handler_are_replayed_into_money(store: Store) -> None:
    """Refunds and chargebacks archived `ignored` by an older version: `events replay` applies
    them; a chargeback whose charge was never booked is counted and left as it was."""
    from domain.archive import unhandled_row
    from worker import archive

    refund = order_event(
        "order.partially_refunded", "ord_old", created_at=1_700_000_100, refunds=(R1,), **PAID
    )
    opened = chargeback_event(
        "charge.chargeback.created", "chbk_old", charge_id="ch_1", created_at=1_700_000_200
    )
    orphan = chargeback_event(
        "charge.chargeback.created", "chbk_orphan", charge_id="ch_gone", created_at=1_700_000_300
    )
    await store.archive([unhandled_row(body, None) for body in (refund, opened, orphan)])
    totals = await archive.replay(store, archive.ReplayFilter(), progress=lambda _: None)
    assert totals == {"applied": 2, "unknown_charge": 1}
    order = await reports.order(store, "ord_old")
    assert order is not None
    assert [e["outcome"] for e in order["events"]] == ["applied", "applied"]  # was `ignored`
    assert await mode_balances(store, False) == {
        "conekta:fees": 1_000,
        "conekta:receivable": 39_000 - 15_000 - 40_000,
        "conekta:disputed": 40_000,
        "customer:cus_1": 25_000,
    }
    await assert_verified(store)


async def test_an_unhandled_event_twice_in_one_batch_is_archived_once(store: Store, db: Db) -> None:
    from domain.archive import unhandled_row

    body = order_event("order.updated", "ord_u")
    await store.archive([unhandled_row(body, None), unhandled_row(body, None)])
    await store.archive([unhandled_row(body, None)])
    assert await count(db, "SELECT count(*) FROM events WHERE outcome = 'ignored'") == 1
