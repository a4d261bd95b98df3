"""What the archive keeps of a webhook's request (core.request): forensics yes, credentials
never, bounded whatever a client sends."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import request
from core.request import MAX_HEADERS, MAX_REMOTE, MAX_TOTAL, MAX_VALUE, from_header, select

CREDENTIAL_NAMES = [
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "X-Api-Key",
    "X_API_KEY",
    "apikey",
    "X-Auth-Token",
    "X-Session-Id",
    "X-Client-Secret",
    "X-Password",
    "X-CSRF-Token",
    "X-Conekta-Token",  # even under Conekta's prefix
]
# Credentials a proxy in front may add under names no denylist foresaw (issue 24, finding 8).
PROXY_CREDENTIALS = [
    "Cf-Access-Jwt-Assertion",
    "X-Goog-Iap-Jwt-Assertion",
    "X-Amzn-Oidc-Data",
    "X-Ms-Client-Principal",
    "X-Access-Key",
    "X-Jwt",
]
KEPT_NAMES = [
    "User-Agent",
    "Content-Type",
    "Content-Length",
    "Digest",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Request-Id",
    "X-Correlation-Id",
    "Conekta-Webhook-Id",
    "X-Conekta-Event",
]
NOT_KEPT_NAMES = ["Accept", "Accept-Encoding", "Host", "Via", "X-Custom"]


def _denied(name: str) -> bool:
    plain = name.lower().replace("_", "-")
    return plain in request.DENIED_NAMES or any(p in plain for p in request.DENIED_PARTS)


def _listed(name: str) -> bool:
    return name in request.KEPT_NAMES or name.startswith(request.KEPT_PREFIXES)


def test_forensic_headers_are_kept_lowercased_with_the_peer() -> None:
    kept = select("203.0.113.9", [(name, f"v-{name}") for name in KEPT_NAMES])
    assert kept["remote"] == "203.0.113.9"
    assert kept["headers"] == {name.lower(): f"v-{name}" for name in KEPT_NAMES}


@pytest.mark.parametrize("name", CREDENTIAL_NAMES + PROXY_CREDENTIALS + NOT_KEPT_NAMES)
def test_only_the_allowlist_is_kept(name: str) -> None:
    kept = select(None, [(name, "s3cr3t"), ("User-Agent", "Conekta/v1")])
    assert kept == {"remote": None, "headers": {"user-agent": "Conekta/v1"}}


def test_repeated_headers_are_joined() -> None:
    kept = select(None, [("X-Forwarded-For", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2")])
    assert kept["headers"] == {"x-forwarded-for": "10.0.0.1, 10.0.0.2"}


def test_values_and_counts_are_bounded() -> None:
    many = [(f"x-conekta-h{i}", "v" * 10_000) for i in range(1000)]
    kept = select("r" * 1000, many)
    assert len(kept["headers"]) <= MAX_HEADERS
    assert all(len(v) <= MAX_VALUE for v in kept["headers"].values())
    assert len(kept["remote"]) == MAX_REMOTE
    assert _size(kept["headers"]) <= MAX_TOTAL


def test_undecodable_bytes_and_control_characters_become_question_marks() -> None:
    kept = select(b"1.2.3.4", [("User-Agent", "a\udcff\x00b\x1b\tc")])
    assert kept == {"remote": None, "headers": {"user-agent": "a??b?\tc"}}


def test_the_header_is_json_text_read_back_as_it_was() -> None:
    kept = select("::1", [("User-Agent", 'ñ "quoted" \\')])
    assert from_header(request.encode(kept)) == kept
    assert from_header(request.encode(kept).encode()) == kept  # bytes, as a table may hold it


@pytest.mark.parametrize(
    "value",
    [
        None,
        "x",
        "{",
        "[]",
        b"\xff",
        1,
        [],
        {"headers": "x"},
        {"remote": "1.2.3.4"},
        {"headers": None},
    ],
)
def test_a_malformed_header_reads_as_none(value: object) -> None:
    assert from_header(value) is None


def test_the_worker_applies_the_rules_again() -> None:
    sent = {
        "remote": 7,
        "headers": {"authorization": "Bearer x", "x-jwt": "e30", "digest": "c2ln", "n": 2, 3: "x"},
    }
    assert from_header(sent) == {"remote": None, "headers": {"digest": "c2ln"}}


def _size(headers: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in headers.items())


names = st.one_of(
    st.text(max_size=80),
    st.sampled_from(CREDENTIAL_NAMES + PROXY_CREDENTIALS + KEPT_NAMES + NOT_KEPT_NAMES),
    st.builds(lambda tail: "x-conekta-" + tail, st.text(max_size=20)),
    st.builds(
        lambda a, b, c: a + b + c,
        st.text(max_size=5),
        st.sampled_from([*request.DENIED_PARTS, "AUTH", "Token", "api_key"]),
        st.text(max_size=5),
    ),
)
values = st.text(max_size=3000)


@given(st.one_of(st.none(), st.text(max_size=200)), st.lists(st.tuples(names, values), max_size=80))
def test_any_headers_no_credential_bounded_never_raises(
    remote: str | None, headers: list[tuple[str, str]]
) -> None:
    kept: dict[str, Any] = select(remote, headers)
    assert not any(_denied(name) for name in kept["headers"])
    assert all(_listed(name) for name in kept["headers"])
    assert len(kept["headers"]) <= MAX_HEADERS
    assert all(len(v.encode()) <= MAX_VALUE for v in kept["headers"].values())
    assert _size(kept["headers"]) <= MAX_TOTAL
    assert kept["remote"] is None or len(kept["remote"].encode()) <= MAX_REMOTE
    text = request.encode(kept)  # JSON for jsonb: valid UTF-8, no NUL, a few KB at most
    assert "\\u00" not in text
    assert len(text.encode()) <= 2 * (MAX_TOTAL + MAX_REMOTE) + 8 * MAX_HEADERS + 40
    assert from_header(text) == kept  # reading it again changes nothing
