"""The archive keeps the webhook's HTTP request (issue 14): the peer and its headers, never its
credentials; for usable and invalid events alike, across a dead-letter replay and purge, and on
the console's event page and API. On real HTTP, RabbitMQ and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import orjson
import pytest

from core import signature
from core.settings import Settings
from domain.plan import plan_batch
from ops import events
from store import Store
from testkit.events import order_event, order_event_document
from testkit.services import (
    OPERATOR,
    VIEWER,
    basic,
    count,
    running_receiver,
    running_worker,
)
from testkit.wait import wait_for
from worker import judge

Db: TypeAlias = "asyncpg.Connection[Any]"

SECRETS = (
    "Bearer sk_live_do_not_keep",
    "session=do-not-keep",
    "key_do_not_keep",
    "eyJ.proxy-jwt-do-not-keep",
)
EXTRA = {
    "User-Agent": "Conekta/v2 webhooks",
    "X-Request-Id": "req-123",
    "Authorization": SECRETS[0],
    "Cookie": SECRETS[1],
    "X-Api-Key": SECRETS[2],
    # What an SSO proxy in front adds: no denylist names it (issue 24, finding 8).
    "Cf-Access-Jwt-Assertion": SECRETS[3],
}


@pytest.fixture
def private_key(key_pair: tuple[Path, Path]) -> Path:
    return key_pair[0]


async def post(url: str, bodies: list[bytes], key: Path) -> list[str]:
    """Signed, with the extra headers (credentials among them); the event ids answered."""
    private = signature.load_private_key(key)
    ids = []
    async with aiohttp.ClientSession() as session:
        for body in bodies:
            headers = {**EXTRA, "Content-Type": "application/json"}
            headers["Digest"] = signature.sign(body, private)
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200, await response.text()
                ids.append((await response.json())["event_id"])
    return ids


async def wait_archived(db: Db, n: int, where: str = "true") -> None:
    async def done() -> bool:
        return await count(db, f"SELECT count(*) FROM events WHERE {where}") >= n

    await wait_for(done, timeout=60, what=f"{n} events archived ({where})")


def assert_kept(request: Any, body: bytes, settings: Settings) -> None:
    """The forensics are there, the credentials are not (anywhere in it)."""
    assert request is not None
    assert request["remote"] == "127.0.0.1"
    headers = request["headers"]
    assert headers["user-agent"] == EXTRA["User-Agent"]
    assert headers["x-request-id"] == "req-123"
    assert headers["content-type"] == "application/json"
    # The signature is public: it lets anyone verify the archived body later.
    keys = signature.load_public_keys(settings.webhook_keys)
    assert signature.verify(body, headers["digest"], keys)
    assert not {"authorization", "cookie", "x-api-key", "cf-access-jwt-assertion"} & set(headers)
    text = orjson.dumps(request).decode()
    assert not any(secret in text for secret in SECRETS)


async def test_usable_and_invalid_events_keep_their_request_without_credentials(
    settings: Settings, broker: Any, db: Db, store: Store, private_key: Path, console: str
) -> None:
    paid = order_event("order.paid", "ord_hdr")
    document = order_event_document("order.paid", "ord_hdr_invalid")
    del document["data"]["object"]["payment_status"]
    invalid = orjson.dumps(document)
    async with running_receiver(settings) as url, running_worker(settings):
        paid_id, invalid_id = await post(url, [paid, invalid], private_key)
        await wait_archived(db, 2)
    for event_id, body, outcome in ((paid_id, paid, "applied"), (invalid_id, invalid, "invalid")):
        shown = await events.show(store, event_id)
        assert shown is not None and shown["outcome"] == outcome
        assert_kept(shown["request"], body, settings)
    stored = await db.fetchval("SELECT string_agg(request::text, ' ') FROM events")
    assert not any(secret in stored for secret in SECRETS)

    async with (
        aiohttp.ClientSession(headers=basic(VIEWER)) as http,
        http.get(f"{console}/api/v1/events/{paid_id}") as r,
    ):
        assert r.status == 200
        assert_kept((await r.json())["request"], paid, settings)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await log_in(http, console, VIEWER)
        async with http.get(f"{console}/events/{invalid_id}") as r:
            page = await r.text()
    assert 'id="request-headers"' in page and "Conekta/v2 webhooks" in page and "req-123" in page
    assert not any(secret in page for secret in SECRETS)


async def test_an_event_without_a_recorded_request_says_so(
    settings: Settings, store: Store, console: str
) -> None:
    """Archived before this version, or fetched from Conekta's Events API (reconcile)."""
    body = order_event("order.paid", "ord_old")
    await store.events.archive([judge.invalid_row(body, None, "x: required")])
    event_id = orjson.loads(body)["id"]
    async with (
        aiohttp.ClientSession(headers=basic(VIEWER)) as http,
        http.get(f"{console}/api/v1/events/{event_id}") as r,
    ):
        assert (await r.json())["request"] is None
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await log_in(http, console, VIEWER)
        async with http.get(f"{console}/events/{event_id}") as r:
            assert "Not recorded" in await r.text()


async def test_a_replayed_dead_letter_and_a_purge_tombstone_keep_the_request(
    settings: Settings,
    broker: Any,
    db: Db,
    store: Store,
    private_key: Path,
    console: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def plan_or_fail(items: Any, *args: Any) -> Any:
        if any(item.event.order_id in {"ord_poison1", "ord_poison2"} for item in items):
            raise ZeroDivisionError("a bug")
        return plan_batch(items, *args)

    monkeypatch.setattr("store.apply.plan_batch", plan_or_fail)
    bodies = [order_event("order.paid", "ord_poison1"), order_event("order.paid", "ord_poison2")]
    one_attempt = replace(settings, max_attempts=1, batch_wait=0.2)
    async with running_receiver(one_attempt) as url, running_worker(one_attempt):
        replayed_id, purged_id = await post(url, bodies, private_key)

        async def stored() -> bool:
            return await count(db, "SELECT count(*) FROM dead_letters") == 2

        await wait_for(stored, timeout=30, what="both events in the dead-letter table")
    monkeypatch.undo()  # the bug fixed

    async with aiohttp.ClientSession(headers=basic(OPERATOR)) as http:
        replay = {"ids": [replayed_id]}
        async with http.post(f"{console}/api/v1/dead-letters/replay", json=replay) as r:
            assert (await r.json())["done"] == [replayed_id]
        purge = {"ids": [purged_id], "reason": "test", "confirm": "purge 1"}
        async with http.post(f"{console}/api/v1/dead-letters/purge", json=purge) as r:
            assert (await r.json())["done"] == [purged_id], await r.text()
    async with running_worker(settings):
        await wait_archived(db, 1, "outcome = 'applied'")
    expected = [(replayed_id, bodies[0], "applied"), (purged_id, bodies[1], "purged")]
    for event_id, body, outcome in expected:
        shown = await events.show(store, event_id)
        assert shown is not None and shown["outcome"] == outcome
        assert_kept(shown["request"], body, settings)


async def log_in(http: aiohttp.ClientSession, url: str, user: tuple[str, str]) -> None:
    async with http.get(f"{url}/login") as page:
        token = (await page.text()).split('name="csrf_token" value="')[1].split('"')[0]
    form = {"user": user[0], "password": user[1], "csrf_token": token, "next": "/"}
    async with http.post(f"{url}/login", data=form, allow_redirects=False) as r:
        assert r.status == 303
