"""Invalid events on call (issue 14), on real PostgreSQL: listed with the reason, a dry run that
judges each body again without writing, replay of a selection after a schema fix, purge with a
typed confirmation and a reason (a tombstone that keeps resends out), all audited with the
user's name; the API, the pages (CSRF, viewers refused) and `events invalid` share one action."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import jsonschema_rs
import orjson
import pytest

import schemas
from core import event as core_event
from core.settings import Settings
from domain.archive import ArchiveRow
from ops import audit
from store import Store
from testkit import signing
from testkit.events import order_event_document
from testkit.processes import cli
from testkit.services import OPERATOR, VIEWER, basic
from testkit.wait import wait_for
from worker import judge

Db: TypeAlias = "asyncpg.Connection[Any]"


@pytest.fixture
async def seeded(store: Store) -> dict[str, str]:
    """Three events archived `invalid` as the worker judged them: one our schema refused (a
    fixable `payment_status` missing), one junk (a string amount), one now without a handler."""
    broken = order_event_document("order.paid", "ord_inv1", created_at=1_700_000_001)
    del broken["data"]["object"]["payment_status"]
    junk = order_event_document("order.paid", "ord_inv2", created_at=1_700_000_002)
    junk["data"]["object"]["amount"] = "lots"
    unhandled = order_event_document("order.paid", "ord_inv3", created_at=1_700_000_003)
    unhandled["type"] = "order.updated"
    rows = [judge.judged_row(orjson.dumps(d), datetime.now(UTC)) for d in (broken, junk)]
    # An event once refused by a rule since relaxed: judged today, it has no handler.
    rows.append(judge.invalid_row(orjson.dumps(unhandled), None, "type: not allowed then"))
    assert all(isinstance(row, ArchiveRow) for row in rows)  # judged before any fix
    # As the worker archives them: with the DIGEST it verified (replays verify it again).
    await store.events.archive(
        [
            replace(row, request=signing.signed_request(row.body))
            for row in rows
            if isinstance(row, ArchiveRow)
        ]
    )
    return {"broken": broken["id"], "junk": junk["id"], "unhandled": unhandled["id"]}


@pytest.fixture
def schema_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fix: `payment_status` no longer required (as test_store_first does)."""
    relaxed = copy.deepcopy(schemas.load("event.json"))
    relaxed["definitions"]["order"]["required"].remove("payment_status")
    monkeypatch.setattr(core_event, "_VALIDATOR", jsonschema_rs.validator_for(relaxed))


async def outcomes(db: Db) -> dict[str, str]:
    return dict(await db.fetch("SELECT event_id, outcome FROM events"))


async def actions(store: Store) -> list[dict[str, Any]]:
    """The audit trail's invalid-event actions (adding the test users is in it too)."""
    return [e for e in await audit.entries(store) if e["action"].startswith("events.")]


async def test_api_lists_previews_and_replays_a_selection_after_a_fix(
    console: str, seeded: dict[str, str], db: Db, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
        async with http.get(f"{console}/api/v1/invalid-events") as r:
            listed = (await r.json())["items"]
        for action in ("replay", "purge"):
            body = {"all": True, "dry_run": True}
            async with http.post(f"{console}/api/v1/invalid-events/{action}", json=body) as r:
                assert r.status == 403  # even a dry run is an operator's
    assert [e["event_id"] for e in listed] == list(seeded.values())
    assert listed[0]["reason"] == "data.object.payment_status: required"
    api = f"{console}/api/v1/invalid-events/replay"
    async with aiohttp.ClientSession(headers=basic(OPERATOR)) as http:
        async with http.post(api, json={"all": True, "dry_run": True}) as r:
            before = await r.json()
        assert before["totals"] == {"invalid": 2, "ignored": 1} and before["done"] == []
        relaxed = copy.deepcopy(schemas.load("event.json"))
        relaxed["definitions"]["order"]["required"].remove("payment_status")
        monkeypatch.setattr(core_event, "_VALIDATOR", jsonschema_rs.validator_for(relaxed))
        async with http.post(api, json={"all": True, "dry_run": True}) as r:
            after = await r.json()
        assert {m["event_id"]: m["note"] for m in after["matched"]} == {
            seeded["broken"]: "applied as order.paid for ord_inv1",
            seeded["junk"]: 'still invalid: data.object.amount: "lots" is not of type "integer"',
            seeded["unhandled"]: "ignored: no handler for order.updated",
        }
        assert set((await outcomes(db)).values()) == {"invalid"}  # a dry run writes nothing
        async with http.post(api, json={"ids": [seeded["broken"], "nope"]}) as r:
            result = await r.json()
        assert (result["done"], result["not_found"]) == ([seeded["broken"]], ["nope"])
        assert result["totals"] == {"applied": 1} and result["audit_id"]
        async with http.post(api, json={"dry_run": True}) as r:
            assert r.status == 400  # an empty selection is refused, never "everything"
    assert (await outcomes(db))[seeded["broken"]] == "applied"
    assert await db.fetchval("SELECT status FROM orders WHERE id = 'ord_inv1'") == "paid"
    # Revived as applied, its order is found by its customer too (an `invalid` row is not).
    searchable = "SELECT DISTINCT order_id FROM order_customers ORDER BY 1"
    assert [r["order_id"] for r in await db.fetch(searchable)] == ["ord_inv1"]
    [entry] = await actions(store)
    assert (entry["actor"], entry["action"], entry["count"]) == (
        "console:oscar",
        "events.replay_invalid",
        1,
    )
    assert entry["details"]["outcomes"] == {"applied": 1}


async def test_api_purge_needs_the_typed_count_and_a_reason_and_keeps_resends_out(
    console: str, seeded: dict[str, str], db: Db, store: Store
) -> None:
    api = f"{console}/api/v1/invalid-events/purge"
    purge: dict[str, Any] = {"type": "order.paid"}
    async with aiohttp.ClientSession(headers=basic(OPERATOR)) as http:
        async with http.post(api, json={**purge, "dry_run": True}) as r:
            preview = await r.json()
        assert [m["verdict"] for m in preview["matched"]] == ["invalid", "invalid"]
        async with http.post(api, json={**purge, "reason": "junk"}) as r:
            assert r.status == 400
            assert '"purge 2"' in (await r.json())["error"]
        async with http.post(api, json={**purge, "confirm": "purge 2"}) as r:
            assert r.status == 400
            assert "reason" in (await r.json())["error"]
        async with http.post(api, json={**purge, "confirm": "purge 2", "reason": "junk"}) as r:
            result = await r.json()
    assert result["done"] == [seeded["broken"], seeded["junk"]]
    rows = await db.fetch("SELECT event_id, outcome, note, body FROM events ORDER BY event_id")
    purged = {r["event_id"]: r for r in rows if r["outcome"] == "purged"}
    assert set(purged) == {seeded["broken"], seeded["junk"]}
    assert {r["note"] for r in purged.values()} == {"purged by console:oscar: junk"}
    assert all(orjson.loads(r["body"])["id"] in purged for r in purged.values())  # body kept
    [entry] = await actions(store)
    assert (entry["actor"], entry["action"], entry["reason"]) == (
        "console:oscar",
        "events.purge_invalid",
        "junk",
    )
    # Conekta sends the junk again: judged invalid again, but the tombstone stays.
    body = bytes(purged[seeded["junk"]]["body"])
    resent = judge.judged_row(body, datetime.now(UTC))
    assert isinstance(resent, ArchiveRow)
    await store.events.archive([resent])
    assert (await outcomes(db))[seeded["junk"]] == "purged"


async def form_token(http: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    """A page's HTML and the session's CSRF token in its forms."""
    async with http.get(url) as page:
        assert page.status == 200, url
        html = await page.text()
    return html, html.split('name="csrf_token" value="')[1].split('"')[0]


async def log_in(http: aiohttp.ClientSession, url: str, user: tuple[str, str]) -> None:
    _, token = await form_token(http, f"{url}/login")
    form = {"user": user[0], "password": user[1], "csrf_token": token, "next": "/"}
    async with http.post(f"{url}/login", data=form, allow_redirects=False) as r:
        assert r.status == 303


async def finished_job(http: aiohttp.ClientSession, url: str, location: str) -> str:
    page = {"html": ""}

    async def done() -> bool:
        async with http.get(url + location) as r:
            page["html"] = await r.text()
        return "finished" in page["html"] or "failed" in page["html"]

    await wait_for(done, what="the console job")
    assert 'id="job-state" class="">finished' in page["html"], page["html"]
    return page["html"]


def browser_like() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies on 127.0.0.1


async def test_pages_preview_then_replay_and_purge_as_jobs(
    console: str, seeded: dict[str, str], schema_fix: None, db: Db, store: Store
) -> None:
    async with browser_like() as http:
        await log_in(http, console, VIEWER)
        html, token = await form_token(http, f"{console}/invalid-events")
        assert "data.object.payment_status: required" in html
        assert f'href="/events/{seeded["broken"]}"' in html
        assert "Replay selected" not in html  # no buttons for a viewer
        async with http.get(f"{console}/events/{seeded['broken']}") as r:
            assert "Judge again" not in await r.text()
        form = {"csrf_token": token, "id": seeded["broken"]}
        async with http.post(f"{console}/invalid-events/replay", data=form) as r:
            assert r.status == 403
    async with browser_like() as http:
        await log_in(http, console, OPERATOR)
        overview, _ = await form_token(http, f"{console}/")
        assert 'href="/invalid-events">invalid</a>' in overview
        async with http.post(f"{console}/invalid-events/replay", data={"all": "yes"}) as r:
            assert r.status == 403  # no CSRF token
        event_page, token = await form_token(http, f"{console}/events/{seeded['broken']}")
        assert 'id="replay-invalid"' in event_page  # this one, from its own page
        form = {"csrf_token": token, "id": seeded["broken"]}
        async with http.post(f"{console}/invalid-events/replay", data=form) as r:
            preview = await r.text()
        assert "Dry run" in preview and "applied as order.paid for ord_inv1" in preview
        assert (await outcomes(db))[seeded["broken"]] == "invalid"
        run = {**form, "step": "run", "reason": "schema fixed"}
        async with http.post(f"{console}/invalid-events/replay", data=run) as r:
            html = await finished_job(http, console, str(r.url.path))
        assert "applied</span> 1" in html and 'href="/invalid-events"' in html
        assert (await outcomes(db))[seeded["broken"]] == "applied"

        purge = {"csrf_token": token, "id": [seeded["junk"], seeded["unhandled"]]}
        async with http.post(f"{console}/invalid-events/purge", data=_pairs(purge)) as r:
            assert "purge 2" in await r.text()
        wrong = {**purge, "step": "run", "confirm": "purge 3", "reason": "junk"}
        async with http.post(f"{console}/invalid-events/purge", data=_pairs(wrong)) as r:
            assert "Type &#34;purge 2&#34; and give a reason to purge." in await r.text()
        assert set((await outcomes(db)).values()) == {"applied", "invalid"}
        right = {**wrong, "confirm": "purge 2"}
        async with http.post(f"{console}/invalid-events/purge", data=_pairs(right)) as r:
            await finished_job(http, console, str(r.url.path))
    assert sorted((await outcomes(db)).values()) == ["applied", "purged", "purged"]
    async with browser_like() as http:
        await log_in(http, console, VIEWER)
        async with http.get(f"{console}/events/{seeded['junk']}") as r:
            assert "purged by console:oscar: junk" in await r.text()  # who and why
    trail = [(e["actor"], e["action"], e["count"]) for e in await actions(store)]
    assert trail == [
        ("console:oscar", "events.replay_invalid", 1),
        ("console:oscar", "events.purge_invalid", 2),
    ]


def _pairs(form: dict[str, Any]) -> list[tuple[str, str]]:
    """A form with repeated fields (checkboxes) as aiohttp posts them."""
    return [(k, v) for k, vs in form.items() for v in (vs if isinstance(vs, list) else [vs])]


async def test_cli_lists_previews_replays_and_purges_with_the_same_actions(
    settings: Settings, seeded: dict[str, str], db: Db, store: Store
) -> None:
    code, output = await cli(settings, "events", "invalid", "list", "--json")
    assert code == 0, output
    assert [e["event_id"] for e in orjson.loads(output)] == list(seeded.values())
    unhandled = seeded["unhandled"]
    code, output = await cli(settings, "events", "invalid", "replay", unhandled, "--dry-run")
    assert code == 0, output
    assert "would replay 1 invalid event(s); now: ignored 1" in output
    assert "ignored: no handler for order.updated" in output
    code, output = await cli(settings, "events", "invalid", "replay", unhandled, "--json")
    assert code == 0, output
    assert orjson.loads(output)["totals"] == {"ignored": 1}
    code, output = await cli(settings, "events", "invalid", "purge", "--all", "--yes")
    assert code == 2  # no reason
    purge = ("events", "invalid", "purge", "--type", "order.paid", "--reason", "junk", "--yes")
    code, output = await cli(settings, *purge)
    assert code == 0, output
    assert "purged 2 invalid event(s): purged 2" in output
    code, output = await cli(settings, "events", "replay", "--outcome", "invalid")
    assert code == 0, output
    assert "none matched" in output  # the old spelling, the same action
    assert (await outcomes(db)) == {
        seeded["broken"]: "purged",
        seeded["junk"]: "purged",
        unhandled: "ignored",
    }
    trail = [(e["action"], e["count"]) for e in await actions(store)]
    assert trail == [("events.replay_invalid", 1), ("events.purge_invalid", 2)]
    assert all(e["actor"].startswith("os:") for e in await actions(store))
