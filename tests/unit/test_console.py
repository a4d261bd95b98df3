"""The console's pure pieces: password hashes, cursors, CSV cells, dead-letter selections, and
an OpenAPI document that names exactly the API's routes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import ip_network
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import example, given
from hypothesis import strategies as st

from console import api, app, auth, pages, settlement, subscribers, users
from console.openapi import document
from core.errors import BadRequest, ConfigError
from core.settings import load_settings
from ops import actions, dead_letters, explore, ledger, paging


def test_passwords_are_salted_scrypt_and_checked_exactly() -> None:
    first, second = users.hash_password("correct horse"), users.hash_password("correct horse")
    assert first.startswith("scrypt$32768$8$1$") and first != second  # salted
    assert users.check_password("correct horse", first)
    assert not users.check_password("correct horsE", first)
    assert not users.check_password("correct horse", "garbage")
    assert not users.check_password("correct horse", "bcrypt$1$2$3$4$5")


def test_session_tokens_are_stored_hashed() -> None:
    assert users.token_hash("abc") != b"abc" and len(users.token_hash("abc")) == 32


def test_cursors_round_trip_and_refuse_garbage() -> None:
    when = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    cursor = paging.encode_cursor(when, "evt_1")
    assert paging.decode_cursor(cursor, datetime, str) == (when, "evt_1")
    for bad in ("garbage", paging.encode_cursor("x"), paging.encode_cursor(1, 2, 3)):
        with pytest.raises(BadRequest):
            paging.decode_cursor(bad, datetime, str)


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t),
)
def test_any_cursor_key_round_trips(when: datetime, key: str) -> None:
    assert paging.decode_cursor(paging.encode_cursor(when, key), datetime, str) == (when, key)


@given(st.text(max_size=60))
def test_no_text_makes_decoding_a_cursor_crash(text: str) -> None:
    with contextlib.suppress(BadRequest):  # a clear 400, never another error
        paging.decode_cursor(text, datetime, str)


def test_times_are_iso_or_unix_and_anything_else_is_a_clear_error() -> None:
    assert explore.parse_time("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert explore.parse_time("0") == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(BadRequest, match="not a time"):
        explore.parse_time("yesterday")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("@x", "'@x"),
        ("customer:a@b.mx", "customer:a@b.mx"),
        (-500, -500),
        ("plain", "plain"),
    ],
)
def test_csv_cells_that_look_like_formulas_are_defused(value: object, cell: object) -> None:
    assert ledger._cell(value) == cell


def test_a_dead_letter_selection_says_exactly_one_thing() -> None:
    for unclear in (actions.Selection(), actions.Selection(ids=("a",), everything=True)):
        with pytest.raises(BadRequest):
            unclear.check(dead_letters.FILTERS)
    by_filter = actions.Selection(event_type="order.paid", kind="transient")
    by_filter.check(dead_letters.FILTERS)
    with pytest.raises(BadRequest):  # a time window selects invalid events, not dead letters
        actions.Selection(since=datetime.now(UTC)).check(dead_letters.FILTERS)
    what = dead_letters.WHAT
    assert by_filter.describe(what) == "type=order.paid kind=transient"
    assert actions.Selection(order_id="ord_1").describe(what) == "order=ord_1"
    assert actions.Selection(ids=("evt_1",)).describe(what) == "evt_1"
    assert actions.Selection(everything=True).describe(what) == "all dead letters"


def test_api_bodies_are_checked_before_anything_is_done() -> None:
    with pytest.raises(BadRequest):
        api.dlq_selection({"ids": "evt_1"})
    with pytest.raises(BadRequest):
        api.dlq_selection({"type": 3})
    assert api.dlq_selection({"all": True}).everything


def test_the_openapi_document_names_exactly_the_api_routes() -> None:
    app = web.Application()
    api.add_routes(app)
    subscribers.add_routes(app)
    settlement.add_routes(app)
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None
        and r.method != "HEAD"
        and r.resource.canonical.startswith("/api/v1")
    }
    doc = document()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == routes
    assert doc["openapi"] == "3.1.0"


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/events?x=1", "/events?x=1"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("/a\r\nSet-Cookie: x", "/"),
        ("/\t/evil.example/x", "/"),  # next=/%09/evil.example/x: a browser drops the tab
        ("/\n/evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\\/evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ /evil.example", "/"),
        ("/\u3000/evil.example", "/"),
        ("", "/"),
        ("/login?next=%2F%2Fevil", "/login?next=%2F%2Fevil"),  # encoded: a query, not a host
    ],
)
def test_after_login_only_paths_of_this_console(target: str, safe: str) -> None:
    assert pages._safe_next(target) == safe


def _as_a_browser_reads(location: str) -> str:
    """What a browser makes of a Location header (WHATWG URL: tabs and newlines removed, leading
    and trailing C0 controls and spaces trimmed, a backslash is a slash)."""
    text = "".join(c for c in location if c not in "\t\n\r").strip("".join(map(chr, range(33))))
    return text.replace("\\", "/")


PIECES = ["/", "\\", "\t", "\n", " ", "\x00", "evil.example", "x:", "@", "?", "#", "%09", "\u3000"]


@given(st.lists(st.sampled_from(PIECES), max_size=6).map("".join) | st.text())
@example("/\t/evil.example/x")
def test_no_next_leaves_this_site(target: str) -> None:
    seen = _as_a_browser_reads(pages._safe_next(target))
    parts = urlsplit(seen)
    assert seen.startswith("/") and not seen.startswith("//")
    assert not parts.scheme and not parts.netloc


PROXIES = (ip_network("10.0.0.0/8"), ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.9", [], "203.0.113.9"),  # no proxy
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # the header of an untrusted peer
        ("10.1.2.3", ["198.51.100.1"], "198.51.100.1"),  # our proxy says who
        ("10.1.2.3", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # what the client wrote: ignored
        ("10.1.2.3", ["6.6.6.6", "198.51.100.1, 10.9.9.9"], "198.51.100.1"),  # two of our hops
        ("::1", ["10.0.0.1, 10.0.0.2"], "10.0.0.1"),  # only proxies: the farthest one
        ("10.1.2.3", ["not-an-ip"], "not-an-ip"),  # a key for the limit, nothing more
        ("10.1.2.3", [], "10.1.2.3"),
    ],
)
def test_the_client_address_believes_only_trusted_proxies(
    peer: str, forwarded_for: list[str], client: str
) -> None:
    assert auth.client_address(peer, forwarded_for, PROXIES) == client


@given(st.text(max_size=30), st.lists(st.text(max_size=300), max_size=4))
def test_the_client_address_is_bounded_and_never_raises(peer: str, hops: list[str]) -> None:
    assert len(auth.client_address(peer, hops, PROXIES)) <= 64


def test_trusted_proxies_are_parsed_and_checked() -> None:
    settings = load_settings({"CONEKTA_CONSOLE_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"})
    assert settings.console_trusted_proxies == (ip_network("10.0.0.0/8"), ip_network("192.0.2.7"))
    with pytest.raises(ConfigError, match="CONEKTA_CONSOLE_TRUSTED_PROXIES"):
        load_settings({"CONEKTA_CONSOLE_TRUSTED_PROXIES": "10.0.0.0/33"})


# -- issue 24: bad query values are 400s naming the field; cross-site writes refused ------------


@pytest.mark.parametrize("cursor", ["WzFlMzBd", paging.encode_cursor(2**63), "WyJhXHUwMDAwIl0"])
def test_a_cursor_the_database_cannot_read_is_a_400_naming_it(cursor: str) -> None:
    # [1e30] and 2**63 overflow bigint; ["a\u0000"] holds a NUL (issue 24, finding 9).
    with pytest.raises(BadRequest, match="^cursor: "):
        paging.decode_cursor(cursor, int)
    with pytest.raises(BadRequest, match="^cursor: "):
        paging.decode_cursor(cursor, datetime, str)


T = TypeVar("T")


def _or_error(call: Callable[[], T]) -> T | str:
    """The result, or the BadRequest's message (any other exception escapes)."""
    try:
        return call()
    except BadRequest as exc:
        return str(exc)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)


@given(st.lists(JSON_VALUES, max_size=3))
def test_a_decoded_cursor_is_what_the_database_can_read(values: list[object]) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode()
    for types in ((int,), (datetime, str)):
        decoded = _or_error(lambda: paging.decode_cursor(cursor, *types))  # noqa: B023
        if isinstance(decoded, str):
            assert decoded.startswith("cursor: ")
            continue
        for value in decoded:
            if isinstance(value, int):
                assert -(2**63) <= value < 2**63 and not isinstance(value, bool)
            elif isinstance(value, datetime):
                assert value.tzinfo is UTC
            else:
                assert isinstance(value, str) and "\x00" not in value


@given(st.datetimes(timezones=st.timezones()) | st.datetimes(), st.sampled_from(["T", " "]))
def test_any_iso_time_is_utc_or_a_clear_error(when: datetime, separator: str) -> None:
    text = when.isoformat(separator)
    parsed = _or_error(lambda: explore.parse_time(text))
    if isinstance(parsed, str):
        assert "not a time" in parsed
        return
    written = datetime.fromisoformat(text)  # the offset as written (a zone's DST fold aside)
    assert parsed.tzinfo is UTC
    assert parsed == (written if written.tzinfo else written.replace(tzinfo=UTC))


def test_a_time_outside_utc_is_a_400_naming_the_field() -> None:
    with pytest.raises(BadRequest, match="^since: not a time"):
        api.named_time("since", "0001-01-01T00:00:00+05:00", ZoneInfo("America/Mexico_City"))
    with pytest.raises(BadRequest, match="limit"):
        api.query_int(make_mocked_request("GET", "/api/v1/events?limit=%C2%B2"), "limit", 5)


def _post(path: str, headers: dict[str, str]) -> web.Request:
    return make_mocked_request("POST", path, headers={"Host": "console.local:8081", **headers})


def test_writes_from_another_origin_are_refused() -> None:
    auth.check_origin(_post("/api/v1/events/replay", {}))  # curl, a script: no Origin
    auth.check_origin(_post("/api/v1/events/replay", {"Origin": "http://console.local:8081"}))
    tls = {"Origin": "https://console.local:8081"}  # a TLS proxy in front
    auth.check_origin(_post("/api/v1/events/replay", tls))
    for origin in (
        "https://evil.example",
        "null",
        "http://console.local",  # another port: another origin
        "http://console.local:8081.evil.example",
        "http://evil.example",
        "file://console.local:8081",
    ):
        with pytest.raises(web.HTTPForbidden):
            auth.check_origin(_post("/api/v1/events/replay", {"Origin": origin}))


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_api_writes_must_be_json(content_type: str) -> None:
    with pytest.raises(web.HTTPUnsupportedMediaType):
        auth.check_json(_post("/api/v1/events/replay", {"Content-Type": content_type}))
    auth.check_json(_post("/x", {"Content-Type": "application/json; charset=utf-8"}))


async def _raises(request: web.Request) -> web.StreamResponse:
    raise ZeroDivisionError("a bug")


@pytest.mark.parametrize("path", ["/api/v1/events", "/events"])
async def test_a_bug_is_a_plain_500_without_its_traceback(path: str) -> None:
    response = await app.errors(make_mocked_request("GET", path), _raises)
    assert response.status == 500
    assert isinstance(response, web.Response) and "ZeroDivisionError" not in (response.text or "")


async def test_every_response_gets_the_security_headers() -> None:
    for response in (web.Response(status=500), web.StreamResponse(), web.FileResponse(__file__)):
        await app.secure_headers(make_mocked_request("GET", "/"), response)
        for name in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"):
            assert name in response.headers
        assert response.headers["Referrer-Policy"] == "same-origin"


async def test_at_most_two_scrypts_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each holds 32 MiB: a burst of logins must not hold 32 MiB each (issue 24, finding 4)."""
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)  # the work, not a synchronisation: long enough for any overlap to show
        with lock:
            running[0] -= 1
        return b"x" * 32

    monkeypatch.setattr(users, "_scrypt", slow_scrypt)
    stored = "scrypt$32768$8$1$" + "c2FsdA==" + "$" + "eA=="
    await asyncio.gather(*(users._check(f"guess-{i}", stored) for i in range(12)))
    assert most[0] == users.SCRYPT_AT_ONCE == 2
