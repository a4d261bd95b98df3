"""The console's pure pieces: password hashes, cursors, CSV cells, dead-letter selections, and
an OpenAPI document that names exactly the API's routes."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from ipaddress import ip_network

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from console import api, auth, pages, users
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
    ],
)
def test_after_login_only_paths_of_this_console(target: str, safe: str) -> None:
    assert pages._safe_next(target) == safe


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
