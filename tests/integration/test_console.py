"""The ops console and its admin API on real PostgreSQL and RabbitMQ: logging in, roles, CSRF,
the rate limit, search, an event whole, the ledger as CSV, dead letters replayed and purged with
the audit trail, and `console add-user`."""

from __future__ import annotations

import asyncio
import csv
import sys
from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import ip_network
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import orjson
import pytest

from console import users
from core import topology
from core.settings import Settings
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import audit
from store import Store
from testkit import signing
from testkit.events import order_event, order_event_document
from testkit.processes import cli, worker_env
from testkit.services import OPERATOR, VIEWER, basic, console_with_users, put_dead_letter
from worker import judge

Db: TypeAlias = "asyncpg.Connection[Any]"


async def apply(store: Store, *bodies: bytes) -> None:
    now = datetime.now(UTC)
    await store.apply.batch([Incoming(parse_order_event(b), b, now) for b in bodies])


async def log_in(
    http: aiohttp.ClientSession, url: str, user: tuple[str, str]
) -> aiohttp.ClientResponse:
    async with http.get(f"{url}/login") as page:
        token = (await page.text()).split('name="csrf_token" value="')[1].split('"')[0]
    return await http.post(
        f"{url}/login",
        data={"user": user[0], "password": user[1], "csrf_token": token, "next": "/"},
        allow_redirects=False,
    )


def browser_like() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies on 127.0.0.1


async def test_behind_a_tls_proxy_the_cookies_are_secure(console: str) -> None:
    # (A client on plain HTTP would not send a Secure cookie back: the login form's cookie, set
    # by the same function as the session's, shows it.)
    proxied = {"X-Forwarded-Proto": "https"}
    async with aiohttp.ClientSession(headers=proxied) as http, http.get(f"{console}/login") as page:
        assert "Secure" in page.headers["Set-Cookie"]


async def test_pages_need_a_login_with_a_strict_httponly_cookie(console: str) -> None:
    async with browser_like() as http:
        async with http.get(f"{console}/events", allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"].startswith("/login?next=")
        forged = await http.post(
            f"{console}/login",
            data={"user": OPERATOR[0], "password": OPERATOR[1], "csrf_token": "forged"},
            allow_redirects=False,
        )
        assert forged.status == 403
        wrong = await log_in(http, console, (OPERATOR[0], "not-the-password"))
        assert wrong.status == 401
        ok = await log_in(http, console, OPERATOR)
        assert ok.status == 303
        cookie = ok.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on 127.0.0.1: a Secure cookie would not return
        async with http.get(f"{console}/") as r:
            assert r.status == 200
            assert "oscar (operator)" in await r.text()
            assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        # A form without the session's CSRF token is refused, even with the cookie.
        async with http.post(f"{console}/dead-letters/replay", data={"all": "yes"}) as r:
            assert r.status == 403
        # The cookie on the API: reads fine, writes need X-CSRF-Token.
        async with http.get(f"{console}/api/v1/me") as r:
            assert (await r.json())["role"] == "operator"
        async with http.post(f"{console}/api/v1/dead-letters/replay", json={"all": True}) as r:
            assert r.status == 403


async def test_behind_a_trusted_proxy_failed_logins_count_per_client(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client's failures must not lock out everyone behind the same proxy."""
    monkeypatch.setattr(users, "MAX_FAILURES_PER_REMOTE", 2)
    proxied = replace(settings, console_trusted_proxies=(ip_network("127.0.0.1/32"),))
    async with console_with_users(proxied, store) as url, aiohttp.ClientSession() as http:

        async def me(user: tuple[str, str], client: str) -> int:
            headers = {**basic(user), "X-Forwarded-For": client}
            async with http.get(f"{url}/api/v1/me", headers=headers) as r:
                return r.status

        assert [await me((n, "wrong-password"), "198.51.100.1") for n in ("a", "b")] == [401, 401]
        assert await me(VIEWER, "198.51.100.1") == 429
        assert await me(VIEWER, "198.51.100.2") == 200


async def test_failed_logins_are_rate_limited(console: str) -> None:
    async with browser_like() as http:
        for _ in range(users.MAX_FAILURES_PER_USER):
            async with http.get(f"{console}/api/v1/me", headers=basic((VIEWER[0], "wrong"))) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Basic")
        async with http.get(f"{console}/api/v1/me", headers=basic(VIEWER)) as r:
            assert r.status == 429  # even the right password, for a while
        wrong = await log_in(http, console, VIEWER)
        assert wrong.status == 429
        async with http.get(f"{console}/api/v1/me", headers=basic(OPERATOR)) as r:
            assert r.status == 200  # others are not locked out


async def test_api_needs_credentials_and_viewers_cannot_act(console: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{console}/api/v1/events") as r:
            assert r.status == 401
            assert "error" in await r.json()
        async with http.get(f"{console}/api/openapi.json") as r:
            assert r.status == 401
        async with http.get(f"{console}/api/v1/events", headers=basic(VIEWER)) as r:
            assert r.status == 200
        for path in ("dead-letters/replay", "dead-letters/purge", "events/replay"):
            async with http.post(
                f"{console}/api/v1/{path}", json={"all": True}, headers=basic(VIEWER)
            ) as r:
                assert r.status == 403, path


async def test_find_an_event_by_customer_and_see_everything_that_came_of_it(
    console: str, store: Store
) -> None:
    paid = order_event("order.paid", "ord_c1", customer_id=None, email="Ana@Example.com")
    other = order_event("order.paid", "ord_c2", customer_id="cus_other")
    await apply(store, paid, other)
    event_id = orjson.loads(paid)["id"]
    async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
        async with http.get(
            f"{console}/api/v1/events", params={"customer": "ana@example.com"}
        ) as r:
            page = await r.json()
        assert [e["event_id"] for e in page["items"]] == [event_id]
        async with http.get(f"{console}/api/v1/events/{event_id}") as r:
            event = await r.json()
        assert event["body"]["id"] == event_id
        assert event["outcome"] == "applied"
        assert event["order"]["status"] == "paid"
        postings = event["order"]["postings"]
        assert sorted(p["business_key"] for p in postings) == [
            "fee:ord_c1:ch_ord_c1",  # the fee is its own movement
            "payment:ord_c1:ch_ord_c1",
        ]
        assert all(sum(e["amount"] for e in p["entries"]) == 0 for p in postings)
        assert [m["message_id"] for m in event["order"]["messages"]] == [f"ful_ord_c1_{event_id}"]
        async with http.get(f"{console}/api/v1/events", params={"since": "yesterday"}) as r:
            assert r.status == 400
            assert "not a time" in (await r.json())["error"]
        async with http.get(f"{console}/api/v1/events", params={"cursor": "garbage"}) as r:
            assert r.status == 400
        async with http.get(f"{console}/api/v1/events", params={"customer": "a\x00b"}) as r:
            assert r.status == 400  # found by the contract test: PostgreSQL text has no NUL
        async with http.get(f"{console}/api/v1/events/nope") as r:
            assert r.status == 404


async def test_pages_across_many_events(console: str, store: Store) -> None:
    await apply(store, *(order_event("order.paid", f"ord_p{i}") for i in range(7)))
    seen: list[str] = []
    cursor = None
    async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
        while True:
            params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
            async with http.get(f"{console}/api/v1/events", params=params) as r:
                page = await r.json()
            seen += [e["event_id"] for e in page["items"]]
            if not (cursor := page["next"]):
                break
    assert len(seen) == len(set(seen)) == 7


async def test_ledger_balances_by_mode_and_entries_as_csv(console: str, store: Store) -> None:
    await apply(store, order_event("order.paid", "ord_l1", amount=2_000, fee=100))
    async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
        async with http.get(f"{console}/api/v1/ledger/balances") as r:
            rows = (await r.json())["balances"]
        assert {(b["livemode"], b["account"], b["balance"]) for b in rows} == {
            (False, "conekta:receivable", 1_900),
            (False, "conekta:fees", 86),  # the fee of 100 less the IVA in it (100 / 1.16)
            (False, "tax:vat_on_fees", 14),
            (False, "customer:cus_test", 2_000),
        }
        assert {b["account"]: b["type"] for b in rows} == {
            "conekta:receivable": "asset",
            "conekta:fees": "expense",
            "customer:cus_test": "revenue",
            "tax:vat_on_fees": "asset",
        }
        # "As of" is when the money moved (the charge's paid_at, 2020-09-13), not when the row
        # was recorded (today): accountants close months by it.
        async with http.get(
            f"{console}/api/v1/ledger/balances", params={"as_of": "2020-09-01"}
        ) as r:
            assert (await r.json())["balances"] == []
        async with http.get(
            f"{console}/api/v1/ledger/balances", params={"as_of": "2020-10-01"}
        ) as r:
            assert (await r.json())["balances"] == rows
        async with http.get(
            f"{console}/api/v1/ledger/entries", params={"since": "2020-10-01"}
        ) as r:
            assert (await r.json())["items"] == []
        async with http.get(f"{console}/api/v1/ledger/entries.csv") as r:
            assert r.headers["Content-Type"].startswith("text/csv")
            lines = (await r.text()).splitlines()
        assert lines[0].startswith("id,effective_at,recorded_at,livemode,business_key")
        assert len(lines) == 1 + 2 + 3  # the payment's two entries, the fee's three
        assert sum(int(row["amount"]) for row in csv.DictReader(lines)) == 0


async def test_dead_letters_dry_run_replay_purge_audited(
    console: str, settings: Settings, broker: Any, store: Store, db: Db
) -> None:
    ids = [await put_dead_letter(store, order_event("order.paid", f"ord_d{i}")) for i in range(3)]
    async with aiohttp.ClientSession(headers=basic(OPERATOR)) as http:
        async with http.get(f"{console}/api/v1/dead-letters") as r:
            assert sorted(d["id"] for d in (await r.json())["items"]) == sorted(ids)
        replay = {"ids": [ids[0]], "dry_run": True}
        async with http.post(f"{console}/api/v1/dead-letters/replay", json=replay) as r:
            preview = await r.json()
        assert [m["id"] for m in preview["matched"]] == [ids[0]] and preview["done"] == []
        replay["dry_run"], replay["wait"] = False, 0  # no worker here: nothing to wait for
        async with http.post(f"{console}/api/v1/dead-letters/replay", json=replay) as r:
            result = await r.json()
        assert result["done"] == [ids[0]] and result["audit_id"]
        purge: dict[str, Any] = {"all": True, "reason": "test data"}
        async with http.post(f"{console}/api/v1/dead-letters/purge", json=purge) as r:
            assert r.status == 400  # no confirmation
            assert '"purge 2"' in (await r.json())["error"]
        purge["confirm"] = "purge 2"
        async with http.post(f"{console}/api/v1/dead-letters/purge", json=purge) as r:
            assert sorted((await r.json())["done"]) == sorted(ids[1:])
        async with http.get(f"{console}/api/v1/audit") as r:
            trail = (await r.json())["items"]
    assert [(a["actor"], a["action"], a["count"]) for a in trail[:2]] == [
        ("console:oscar", "dlq.purge", 2),
        ("console:oscar", "dlq.replay", 1),
    ]
    assert trail[0]["reason"] == "test data"
    channel = await broker.channel()
    replayed = await channel.declare_queue(topology.ORDERS_QUEUE, passive=True)
    assert replayed.declaration_result.message_count == 1
    statuses = await db.fetch("SELECT message_id, status FROM dead_letters ORDER BY id")
    assert {r["message_id"]: r["status"] for r in statuses} == {
        ids[0]: "replayed",
        ids[1]: "purged",
        ids[2]: "purged",
    }
    # The purged events left tombstones: a resend is not applied behind the operator's back.
    tombs = await db.fetchval("SELECT count(*) FROM events WHERE outcome = 'purged'")
    assert tombs == 2


async def test_add_user_reads_the_password_from_stdin(settings: Settings, store: Store) -> None:
    async def add(*args: str, password: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "console",
            "add-user",
            *args,
            "--password-stdin",
            env=worker_env(settings),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate(password.encode() + b"\n")
        assert process.returncode is not None
        return process.returncode, out.decode()

    code, output = await add("maria", "--role", "operator", password="a long passphrase")
    assert code == 0, output
    assert "created operator maria" in output
    row = await store.users.get("maria")
    assert row is not None and row["password_hash"].startswith("scrypt$")
    assert "a long passphrase" not in row["password_hash"]
    assert await users.authenticate(store, "maria", "a long passphrase", "test") is not None
    code, output = await add("maria", "--role", "viewer", password="short")
    assert code == 2 and "at least 12 characters" in output


async def test_overview_counts_the_day_and_shows_the_last_reconcile(
    console: str, store: Store, db: Any
) -> None:
    await apply(store, order_event("order.paid", "ord_o1"), order_event("order.declined", "ord_o2"))
    async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
        async with http.get(f"{console}/api/v1/overview") as r:
            before = await r.json()
        await db.execute(
            "INSERT INTO reconcile_runs (since, until, dry_run, status, finished_at, counts)"
            " VALUES (now() - interval '1 day', now(), false, 'ok', now(),"
            ' \'{"order.paid": {"seen": 2, "backfilled": 1}}\')'
        )
        async with http.get(f"{console}/api/v1/overview") as r:
            after = await r.json()
    assert before["outcomes_24h"] == {"applied": 2}
    assert before["last_reconcile"] is None
    assert after["last_reconcile"]["counts"]["order.paid"]["backfilled"] == 1
    assert set(before["queues"]) >= {"conekta.orders", "conekta.dead-letters"}
    assert before["dead_letters_open"] == 0


async def test_cli_selects_dead_letters_by_filters_with_a_dry_run(
    settings: Settings, broker: Any, store: Store, db: Db
) -> None:
    """The CLI and the console share the selection: type, kind and order must all match."""
    first = await put_dead_letter(store, order_event("order.paid", "ord_f1"), kind="permanent")
    await put_dead_letter(store, order_event("order.paid", "ord_f2"), kind="transient")
    await put_dead_letter(store, order_event("order.declined", "ord_f1"), kind="permanent")
    code, output = await cli(settings, "dlq", "list", "--order", "ord_f1", "--json")
    assert code == 0, output
    assert len(orjson.loads(output)) == 2
    selection = ("--type", "order.paid", "--kind", "permanent", "--order", "ord_f1")
    code, output = await cli(settings, "dlq", "purge", *selection, "--dry-run", "--json")
    assert code == 0, output
    preview = orjson.loads(output)
    assert [m["id"] for m in preview["matched"]] == [first] and preview["done"] == []
    assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE status = 'dead'") == 3
    code, output = await cli(settings, "dlq", "replay", *selection, "--no-wait", "--json")
    assert code == 0, output
    assert orjson.loads(output)["replayed"] == [first]
    [entry] = await audit.entries(store)
    assert entry["action"] == "dlq.replay" and entry["count"] == 1
    assert entry["actor"].startswith("os:")
    assert entry["details"]["selection"]["kind"] == "permanent"
    code, output = await cli(settings, "dlq", "replay", "--type", "order.paid", "--all")
    assert code == 2  # one way of saying which


async def test_readiness_and_metrics_come_from_core_health(console: str) -> None:
    async with aiohttp.ClientSession() as http:  # no login: probes and Prometheus
        async with http.get(f"{console}/readyz") as r:
            assert (r.status, await r.json()) == (
                200,
                {"status": "ok", "database": True, "tasks": True},
            )
        async with http.get(f"{console}/metrics") as r:
            assert r.status == 200
            assert "conekta_console_jobs_running" in await r.text()


async def test_invalid_events_show_their_reason_and_are_judged_again_from_the_api(
    console: str, store: Store
) -> None:
    document = orjson.loads(order_event("order.paid", "ord_inv"))
    del document["data"]["object"]["payment_status"]
    body = orjson.dumps(document)
    await store.events.archive(
        [
            judge.invalid_row(
                body, None, "data.object.payment_status: required", signing.signed_request(body)
            )
        ]
    )
    async with browser_like() as http:
        assert (await log_in(http, console, VIEWER)).status == 303
        async with http.get(f"{console}/events/{document['id']}") as r:
            assert "data.object.payment_status: required" in await r.text()
    async with aiohttp.ClientSession(headers=basic(OPERATOR)) as http:
        replay = {"outcome": "invalid"}
        async with http.post(f"{console}/api/v1/events/replay", json=replay) as r:
            assert r.status == 200
            assert (await r.json())["outcomes"] == {"invalid": 1}  # still invalid: no fix yet
    assert [e["action"] for e in await audit.entries(store)][-1:] == ["events.replay_invalid"]


def _paid(order_id: str, paid_at: int, email: str) -> bytes:
    document = order_event_document("order.paid", order_id, customer_id=None, email=email)
    document["data"]["object"]["charges"]["data"][0]["paid_at"] = paid_at
    return orjson.dumps(document)


async def test_cli_and_console_read_the_same_entries_by_effective_date(
    console: str, settings: Settings, store: Store
) -> None:
    """One read for both: the same rows in the same shape (`livemode`), by when the money moved
    (recorded later, moved earlier: listed first), and one CSV (formula-like cells defused, see
    tests/unit/test_console.py) for both."""
    await apply(store, _paid("ord_late", 1_700_000_000, "=cmd@evil.mx"))
    await apply(store, _paid("ord_early", 1_600_000_000, "a@b.mx"))
    async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
        async with http.get(f"{console}/api/v1/ledger/entries", params={"limit": 2}) as r:
            first = await r.json()
        async with http.get(
            f"{console}/api/v1/ledger/entries", params={"cursor": first["next"], "limit": 200}
        ) as r:
            api_rows = first["items"] + (await r.json())["items"]
        async with http.get(f"{console}/api/v1/ledger/entries.csv") as r:
            console_csv = await r.text()
    code, cli_json = await cli(settings, "ledger", "entries", "--json")
    assert code == 0 and orjson.loads(cli_json) == api_rows
    orders = [row["business_key"].split(":")[1] for row in api_rows]
    assert orders == sorted(orders, key=lambda o: o != "ord_early")  # early's entries first
    assert set(orders) == {"ord_early", "ord_late"}
    assert all(row["livemode"] is False for row in api_rows)
    code, cli_csv = await cli(settings, "ledger", "entries", "--csv")
    assert code == 0 and cli_csv == console_csv
    assert ",customer:=cmd@evil.mx," in cli_csv  # never a cell that starts with "="
