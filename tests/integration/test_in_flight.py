"""No event out of sight (issue 25): an event waiting for a retry is shown as such by `events
show`, `events list --state retrying`, the console's overview, event page and API; an id the
worker has not seen is "not seen yet" with the queue's depth; a refund of a charge nobody booked
asks Conekta's API for its order instead of waiting, and is dead-lettered at once when Conekta
does not know the order either."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import orjson
import pytest

from core.settings import Settings
from testkit.events import (
    charge_refunded_event,
    chargeback_event,
    order_event,
    order_event_document,
)
from testkit.fake_conekta import FakeConekta, running
from testkit.processes import cli
from testkit.services import VIEWER, basic, count, publish_events, running_worker
from testkit.wait import wait_for
from tests.integration.test_console import browser_like, log_in

pytestmark = pytest.mark.integration
Db: TypeAlias = "asyncpg.Connection[Any]"


async def test_an_event_waiting_for_a_retry_is_in_sight_everywhere(
    settings: Settings, broker: Any, db: Db, console: str
) -> None:
    waiting = chargeback_event("charge.chargeback.created", "chb_w1", charge_id="ch_nobody")
    event_id = orjson.loads(waiting)["id"]
    async with running_worker(replace(settings, conekta_api_key=None)):
        await publish_events(broker, [waiting])

        async def recorded() -> bool:
            return await count(db, "SELECT count(*) FROM event_failures") == 1

        await wait_for(recorded, what="the retry recorded")
        code, output = await cli(settings, "events", "show", event_id)
        assert code == 0, output
        shown = orjson.loads(output)
        assert shown["state"] == "retrying" and shown["error_kind"] == "unknown_charge"
        assert re.match(r"retrying: attempt \d+, unknown_charge: UnknownCharge: ", shown["summary"])
        assert "ch_nobody" in shown["summary"] and "next at" in shown["summary"]
        code, output = await cli(settings, "events", "list", "--state", "retrying", "--json")
        assert [row["event_id"] for row in orjson.loads(output)] == [event_id]
        async with (
            aiohttp.ClientSession(headers=basic(VIEWER)) as http,
            http.get(f"{console}/api/v1/events/{event_id}") as r,
        ):
            assert r.status == 200
            assert (await r.json())["state"] == "retrying"
        async with browser_like() as browser:
            await log_in(browser, console, VIEWER)
            async with browser.get(f"{console}/events/{event_id}") as r:
                page = await r.text()
                assert r.status == 200 and "retrying: attempt " in page
        async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
            async with http.get(f"{console}/api/v1/overview") as r:
                [reason] = (await r.json())["in_flight"]
                assert reason["error_kind"] == "unknown_charge" and reason["events"] == 1
            async with http.get(f"{console}/api/v1/events/{'f' * 24}") as r:
                assert r.status == 404
                assert "not seen by the worker yet" in await r.text()
    code, output = await cli(settings, "events", "show", "e" * 24)
    assert code == 1 and "not seen by the worker yet: conekta.orders holds" in output


async def test_an_archived_event_leaves_no_retry_behind(
    settings: Settings, broker: Any, db: Db
) -> None:
    """The chargeback's payment arrives: the chargeback applies on its retry, and its row goes."""
    paid = order_event("order.paid", "ord_late", charge_id="ch_late", customer_id="cus_l")
    chargeback = chargeback_event("charge.chargeback.created", "chb_l1", charge_id="ch_late")
    async with running_worker(replace(settings, conekta_api_key=None)):
        await publish_events(broker, [chargeback])

        async def recorded() -> bool:
            return await count(db, "SELECT count(*) FROM event_failures") == 1

        await wait_for(recorded, what="the retry recorded")
        await publish_events(broker, [paid])

        async def applied() -> bool:
            return await count(db, "SELECT count(*) FROM events WHERE type LIKE 'charge.%'") == 1

        await wait_for(applied, timeout=60, what="the chargeback applied on its retry")
    assert await count(db, "SELECT count(*) FROM event_failures") == 0


async def test_a_refund_of_an_unknown_charge_asks_conekta(
    settings: Settings, broker: Any, db: Db
) -> None:
    known = order_event_document("order.paid", "ord_asked", charge_id="ch_asked", customer_id="c")
    refund = charge_refunded_event(
        "ord_asked", charge_id="ch_asked", refunds=(("ref_a1", 2500, 1_700_000_100),)
    )
    ghost = charge_refunded_event(
        "ord_ghost", charge_id="ch_ghost", refunds=(("ref_g1", 100, 1_700_000_100),)
    )
    known["data"]["object"] |= {"created_at": 1_700_000_000, "livemode": False}  # as the API has it
    fake = FakeConekta()
    fake.add_event(known)
    async with running(fake) as url:
        asking = replace(settings, conekta_api_key=fake.key, conekta_api_url=url)
        async with running_worker(asking):
            await publish_events(broker, [refund, ghost])

            async def decided() -> bool:
                archived = await count(
                    db, "SELECT count(*) FROM events WHERE type = 'charge.refunded'"
                )
                dead = await count(db, "SELECT count(*) FROM dead_letters")
                return archived == 1 and dead == 1

            await wait_for(decided, timeout=30, what="the refund applied, the ghost dead")
    assert await count(db, "SELECT count(*) FROM refunds WHERE id = 'ref_a1'") == 1
    provenance = await db.fetchval("SELECT provenance FROM events WHERE event_id LIKE 'checkout_%'")
    assert provenance == "api"
    reason = await db.fetchval("SELECT reason FROM dead_letters")
    assert "Conekta does not know order ord_ghost" in reason
    assert await db.fetchval("SELECT kind FROM dead_letters") == "permanent"
    assert "/orders/ord_asked" in fake.requests and "/orders/ord_ghost" in fake.requests
