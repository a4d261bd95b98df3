"""The console against the attacks of issue 24's review, on a real console, PostgreSQL and
RabbitMQ: parallel password guesses are limited (and cannot lock the user out from elsewhere),
out-of-range query values are 400s naming the field (never a 500), every response carries the
security headers, state-changing API calls must be JSON from this site, and `next` after login
never leaves it."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import replace
from ipaddress import ip_network

import aiohttp

from console import users
from core.settings import Settings
from store import Store
from testkit.services import OPERATOR, VIEWER, basic, console_with_users

SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
)


async def test_parallel_guesses_are_limited_and_lock_out_no_one_elsewhere(
    settings: Settings, store: Store
) -> None:
    """Finding 4: 12 parallel wrong passwords all got 401 (the limit was read before scrypt and
    written after), and then the right password got 429 from anywhere."""
    proxied = replace(settings, console_trusted_proxies=(ip_network("127.0.0.1/32"),))
    async with console_with_users(proxied, store) as url, aiohttp.ClientSession() as http:

        async def me(user: tuple[str, str], client: str) -> int:
            headers = {**basic(user), "X-Forwarded-For": client}
            async with http.get(f"{url}/api/v1/me", headers=headers) as r:
                return r.status

        guesser, owner = "198.51.100.7", "203.0.113.5"
        guesses = [me((VIEWER[0], f"guess-{i}"), guesser) for i in range(12)]
        statuses = Counter(await asyncio.gather(*guesses))
        assert set(statuses) <= {401, 429}
        assert statuses[401] <= users.MAX_FAILURES_PER_USER
        assert statuses[429] >= 12 - users.MAX_FAILURES_PER_USER
        assert await me(VIEWER, guesser) == 429  # the guesser stays locked out, right or not
        assert await me(VIEWER, owner) == 200  # the user, from their own address, is not
        assert await me(VIEWER, owner) == 200
        assert await me(VIEWER, guesser) == 429  # nor does the user's login forgive the guesser


def assert_secured(response: aiohttp.ClientResponse) -> None:
    missing = [h for h in SECURITY_HEADERS if h not in response.headers]
    assert not missing, f"{response.method} {response.url} {response.status}: no {missing}"


BAD_QUERIES = [
    ("/api/v1/ledger/entries?cursor=WzFlMzBd", "cursor"),  # [1e30]: past bigint
    ("/api/v1/events?since=0001-01-01T00:00:00%2B05:00", "since"),  # before year 1 in UTC
    ("/api/v1/events?until=9999-12-31T23:59:59-05:00", "until"),  # after year 9999 in UTC
    ("/api/v1/orders?cursor=WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzA1OjAwIiwieCJd", "cursor"),
    ("/api/v1/ledger/balances?as_of=0001-01-01T00:00:00%2B01:00", "as_of"),
    ("/api/v1/invalid-events?since=0001-01-01T00:00:00%2B01:00", "since"),
    ("/api/v1/ledger/entries.csv?since=0001-01-01T00:00:00%2B01:00", "since"),
    ("/api/v1/audit?limit=%C2%B2", "limit"),  # "²" is a digit to str.isdigit
]


async def test_bad_query_values_are_400s_naming_the_field(console: str) -> None:
    async with aiohttp.ClientSession(headers=basic(VIEWER)) as http:
        for path, field in BAD_QUERIES:
            async with http.get(f"{console}{path}") as r:
                assert r.status == 400, (path, await r.text())
                assert (await r.json())["error"].startswith(field), path
                assert_secured(r)


async def test_every_response_carries_the_security_headers(console: str) -> None:
    async with aiohttp.ClientSession() as http:
        for method, path, headers in [
            ("GET", "/login", {}),
            ("GET", "/events", {}),  # 303 to the login
            ("GET", "/static/console.css", {}),
            ("GET", "/api/v1/me", {}),  # 401
            ("GET", "/api/v1/me", basic(VIEWER)),
            ("GET", "/api/v1/nope", basic(VIEWER)),  # 404
            ("PUT", "/api/v1/me", basic(VIEWER)),  # 405
            ("GET", "/api/v1/ledger/entries.csv", basic(VIEWER)),  # streamed
            ("GET", "/api/v1/events?limit=0", basic(VIEWER)),  # 400
            ("GET", "/healthz", {}),
        ]:
            async with http.request(
                method, f"{console}{path}", headers=headers, allow_redirects=False
            ) as r:
                assert_secured(r)


async def test_a_cross_site_form_cannot_replay(console: str) -> None:
    """A page elsewhere can make the browser POST text/plain with the Basic credentials it
    cached (finding 6): refused before anything is read or done."""
    replay = '{"since": "2020-01-01T00:00:00Z"}'
    url = f"{console}/api/v1/events/replay"
    async with aiohttp.ClientSession(headers=basic(OPERATOR)) as http:
        plain = {"Content-Type": "text/plain"}
        async with http.post(url, data=replay, headers=plain) as r:
            assert r.status == 415
            assert_secured(r)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        async with http.post(url, data=replay, headers=form) as r:
            assert r.status == 415
        elsewhere = {"Content-Type": "application/json", "Origin": "https://evil.example"}
        async with http.post(url, data=replay, headers=elsewhere) as r:
            assert r.status == 403
            assert "Origin" in (await r.json())["error"]
        here = {"Content-Type": "application/json", "Origin": console}
        async with http.post(url, data=replay, headers=here) as r:
            assert r.status == 200, await r.text()
        async with http.post(url, data=replay, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 200  # a script: no Origin


OFFSITE = [
    "/%09/evil.example/x",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/%0a/evil.example",
]


async def test_next_after_login_never_leaves_the_site(console: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for target, sent in itertools.product(OFFSITE, ("shown", "forged")):
            # The form's own hidden field, then a forged one.
            forged = target.replace("%09", "\t").replace("%0a", "\n")
            async with http.get(f"{console}/login?next={target}") as page:
                html = await page.text()
            token = html.split('name="csrf_token" value="')[1].split('"')[0]
            shown = html.split('name="next" value="')[1].split('"')[0]
            assert shown == "/"
            form = {"user": OPERATOR[0], "password": OPERATOR[1], "csrf_token": token}
            async with http.post(
                f"{console}/login",
                data={**form, "next": shown if sent == "shown" else forged},
                allow_redirects=False,
            ) as r:
                assert r.status == 303, target
                assert r.headers["Location"] == "/", target
