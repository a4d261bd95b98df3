"""`fulfillment replay` and `fulfillment subscribers` (ops/fulfillment.py), from the CLI and the
console's API and pages, on the real broker: a replay reaches one subscriber's queue only, with
the same message ids and the original routing key in a header; audited; dry runs send nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeAlias

import aio_pika
import aiohttp
import asyncpg
import orjson
import pytest

from core import topology
from core.settings import Settings
from domain.order_event import parse_order_event
from domain.plan import Incoming
from examples import fulfillment_subscriber as example
from store import Store
from testkit.events import order_event
from testkit.processes import cli
from testkit.services import OPERATOR, VIEWER, basic, console_with_users
from tests.integration.test_invalid_events import browser_like, finished_job, form_token, log_in

Db: TypeAlias = "asyncpg.Connection[Any]"
SUBSCRIBERS = ("shipping", "billing")
SHIPPING = topology.subscriber_queue("shipping")
BILLING = topology.subscriber_queue("billing")


@pytest.fixture
def configured(settings: Settings) -> Settings:
    return replace(settings, fulfillment_subscribers=SUBSCRIBERS)


async def _applied_and_sent(store: Store, db: Db) -> list[str]:
    """Three changes of two orders applied (their outbox rows), marked published."""
    now = datetime.now(UTC)
    bodies = [
        order_event("order.paid", "ord_rp1", created_at=1_700_000_000),
        order_event(
            "order.refunded",
            "ord_rp1",
            created_at=1_700_000_100,
            refunds=(("ref_rp1", 10_000, 1_700_000_100),),
        ),
        order_event("order.paid", "ord_rp2", created_at=1_700_000_200),
    ]
    await store.apply.batch([Incoming(parse_order_event(b), b, now) for b in bodies])
    await db.execute("UPDATE outbox SET sent_at = now()")
    rows = await db.fetch("SELECT message_id FROM outbox ORDER BY id")
    return [r["message_id"] for r in rows]


async def _declare_subscribers(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    for name in SUBSCRIBERS:
        await example.declare(await connection.channel(), name)
    await connection.close()


async def _drain(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    source = await channel.get_queue(queue, ensure=False)
    taken = []
    while (message := await source.get(fail=False, no_ack=True)) is not None:
        taken.append(message)
    await connection.close()
    return taken


async def test_cli_replays_to_one_queue_only(
    configured: Settings, store: Store, db: Db, amqp_url: str
) -> None:
    ids = await _applied_and_sent(store, db)
    assert len(ids) == 3
    await _declare_subscribers(amqp_url)

    code, out = await cli(configured, "fulfillment", "replay", "--queue", SHIPPING, "--dry-run")
    assert (code, out.strip()) == (
        0,
        f"would publish 3 message(s) to {SHIPPING}: order.paid 2, order.refunded 1",
    )
    assert await _drain(amqp_url, SHIPPING) == []  # a dry run sends nothing

    code, out = await cli(
        configured, "fulfillment", "replay", "--queue", SHIPPING, "--order", "ord_rp1"
    )
    assert code == 0, out
    assert out.strip().endswith(
        f"published 2 message(s) to {SHIPPING}: order.paid 1, order.refunded 1"
    )
    got = await _drain(amqp_url, SHIPPING)
    assert [m.message_id for m in got] == ids[:2]  # in the order of the changes
    assert [m.headers[topology.ROUTING_KEY_HEADER] for m in got] == ["order.paid", "order.refunded"]
    assert [m.routing_key for m in got] == [SHIPPING, SHIPPING]
    assert [orjson.loads(m.body)["event_type"] for m in got] == ["order.paid", "order.refunded"]

    code, out = await cli(
        configured, "fulfillment", "replay", "--queue", SHIPPING, "--type", "order.paid", "--json"
    )
    assert code == 0, out
    assert orjson.loads(out)["published"] == 2
    code, out = await cli(
        configured, "fulfillment", "replay", "--queue", SHIPPING, "--until", "2000-01-01"
    )
    assert code == 0 and "published 0 message(s)" in out
    assert len(await _drain(amqp_url, SHIPPING)) == 2
    # Nobody else saw anything: not the other subscriber, not the unrouted queue.
    assert await _drain(amqp_url, BILLING) == []
    assert await _drain(amqp_url, topology.FULFILLMENT_UNROUTED_QUEUE) == []

    audited = await db.fetch(
        "SELECT actor, count, details FROM audit_log"
        " WHERE action = 'fulfillment.replay' ORDER BY id"
    )
    assert [r["count"] for r in audited] == [2, 2, 0]
    details = orjson.loads(audited[0]["details"])
    assert details["queue"] == SHIPPING and "order=ord_rp1" in details["target"]
    assert audited[0]["actor"].startswith("os:")

    # Only a configured subscriber's queue; a clear word when it is not there.
    code, out = await cli(configured, "fulfillment", "replay", "--queue", topology.ORDERS_QUEUE)
    assert code == 2 and "not a configured subscriber's queue" in out
    connection = await aio_pika.connect(amqp_url)
    await (await connection.channel()).queue_delete(BILLING)
    await connection.close()
    code, out = await cli(configured, "fulfillment", "replay", "--queue", BILLING)
    assert code == 2 and "does not exist" in out


async def test_subscribers_command_shows_each_queue(configured: Settings, amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    await example.declare(await connection.channel(), "shipping")
    await connection.close()
    code, out = await cli(configured, "fulfillment", "subscribers", "--json")
    assert code == 0, out
    assert [(s["name"], s["exists"], s["messages"]) for s in orjson.loads(out)] == [
        ("shipping", True, 0),
        ("billing", False, 0),
    ]
    code, out = await cli(configured, "fulfillment", "subscribers")
    assert code == 0 and f"{BILLING} (missing)" in out


async def test_console_api_and_pages_replay_to_one_queue(
    configured: Settings, store: Store, db: Db, amqp_url: str
) -> None:
    ids = await _applied_and_sent(store, db)
    await _declare_subscribers(amqp_url)
    async with console_with_users(configured, store) as console:
        async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
            async with http.get(f"{console}/api/v1/fulfillment/subscribers") as r:
                states = (await r.json())["items"]
            assert [(s["name"], s["exists"]) for s in states] == [
                ("shipping", True),
                ("billing", True),
            ]
            async with http.post(
                f"{console}/api/v1/fulfillment/replay", json={"queue": BILLING}
            ) as r:
                assert r.status == 403  # viewers cannot act
        async with aiohttp.ClientSession(headers=basic(OPERATOR)) as http:
            body = {"queue": BILLING, "type": "order.paid", "dry_run": True}
            async with http.post(f"{console}/api/v1/fulfillment/replay", json=body) as r:
                preview = await r.json()
            assert (preview["matched"], preview["published"]) == (2, 0)
            body["dry_run"] = False
            async with http.post(f"{console}/api/v1/fulfillment/replay", json=body) as r:
                result = await r.json()
            assert result["published"] == 2 and result["audit_id"]
            async with http.post(
                f"{console}/api/v1/fulfillment/replay", json={"queue": "conekta.orders"}
            ) as r:
                assert r.status == 400
                assert "not a configured subscriber's queue" in (await r.json())["error"]
    got = await _drain(amqp_url, BILLING)
    assert [m.message_id for m in got] == [ids[0], ids[2]]
    assert await _drain(amqp_url, SHIPPING) == []


async def test_console_page_previews_then_replays_as_a_job(
    configured: Settings, store: Store, db: Db, amqp_url: str
) -> None:
    ids = await _applied_and_sent(store, db)
    await _declare_subscribers(amqp_url)
    async with console_with_users(configured, store) as console, browser_like() as http:
        await log_in(http, console, OPERATOR)
        overview, _ = await form_token(http, f"{console}/")
        assert 'id="subscribers"' in overview and "billing" in overview
        page, token = await form_token(http, f"{console}/fulfillment")
        assert SHIPPING in page and 'id="replay-form"' in page
        form = {"csrf_token": token, "queue": SHIPPING, "order_id": "ord_rp2"}
        async with http.post(f"{console}/fulfillment/replay", data=form) as r:
            preview = await r.text()
        assert f"Replay 1 message(s) to {SHIPPING}?" in preview
        assert await _drain(amqp_url, SHIPPING) == []  # the preview sent nothing
        form |= {"step": "run", "reason": "shipping lost its queue"}
        async with http.post(
            f"{console}/fulfillment/replay", data=form, allow_redirects=False
        ) as r:
            assert r.status == 303
            location = r.headers["Location"]
        done = await finished_job(http, console, location)
        assert "1 done" in done and 'href="/fulfillment"' in done
    assert [m.message_id for m in await _drain(amqp_url, SHIPPING)] == [ids[2]]
    assert await _drain(amqp_url, BILLING) == []
    row = await db.fetchrow(
        "SELECT actor, count, details FROM audit_log WHERE action = 'fulfillment.replay'"
    )
    assert row is not None and (row["actor"], row["count"]) == ("console:oscar", 1)
    assert orjson.loads(row["details"])["reason"] == "shipping lost its queue"
