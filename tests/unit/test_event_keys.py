"""Bounded keys and the safe peek at any body (core.event), the traceback summary of dead
letters, and a zero charge posting nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.event import UNKNOWN_TYPE, event_key, peek, route
from domain.order_event import parse_order_event
from domain.outcome import Outcome
from domain.plan import Booked, Incoming, plan_batch
from testkit.events import order_event
from worker.failures import traceback_summary
from worker.judge import invalid_row


def test_conekta_ids_are_their_own_key() -> None:
    assert event_key("6553f100eeb965ea639070cf", b"{}") == "6553f100eeb965ea639070cf"


@pytest.mark.parametrize(
    ("original", "prefix"),
    [("e" * 10_000, "sha256:"), ("a b", "sha256:"), ("a:b", "sha256:"), ("ñ", "sha256:")],
)
def test_odd_ids_get_a_hashed_key(original: str, prefix: str) -> None:
    key = event_key(original, b"{}")
    assert key.startswith(prefix) and len(key) == len(prefix) + 64
    assert key == event_key(original, b"other body")  # the id decides, not the bytes


@pytest.mark.parametrize("original", [None, "", 12, ["x"], {"a": 1}, True])
def test_no_usable_id_gets_a_key_from_the_body(original: object) -> None:
    assert event_key(original, b"[1]").startswith("body:")
    assert event_key(original, b"[1]") == event_key(original, b"[1]")
    assert event_key(original, b"[1]") != event_key(original, b"[2]")


@given(st.binary(max_size=300))
def test_peek_never_raises_and_keys_stay_bounded(body: bytes) -> None:
    seen = peek(body)
    assert len(seen.key.encode()) <= 255


_ODD = st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists, max_leaves=5)


@given(
    st.binary(max_size=300) | st.builds(lambda v: json.dumps({"id": v, "type": v}).encode(), _ODD)
)
def test_the_receivers_route_is_what_the_worker_peeks(body: bytes) -> None:
    """The message id and routing key the receiver sends are the key and type the worker and
    the archive derive from the same body."""
    routed, seen = route(body), peek(body)
    assert (routed.key, routed.type, routed.livemode) == (seen.key, seen.type, seen.livemode)


@given(_ODD)
def test_an_invalid_row_can_be_built_from_any_json(value: object) -> None:
    body = json.dumps({"id": value, "type": value, "livemode": value, "created_at": value}).encode()
    row = invalid_row(body, None, "x: required")
    assert row.outcome == "invalid" and len(row.event_id) <= 255
    assert row.type == UNKNOWN_TYPE or row.type == value
    assert "\x00" not in (row.original_id or "")


def test_the_traceback_summary_names_where_it_was_raised() -> None:
    def inner() -> None:
        raise RuntimeError("boom")

    try:
        inner()
    except RuntimeError as exc:
        summary = traceback_summary(exc)
    assert summary.endswith("in inner")
    assert "test_event_keys.py:" in summary


def test_a_paid_charge_of_zero_posts_nothing() -> None:
    body = order_event("order.paid", "ord_zero", amount=0, fee=0)
    event = parse_order_event(body)
    assert event.paid_charges == ()
    plan = plan_batch([Incoming(event, body, None)], Booked())
    assert plan.outcomes == [Outcome.APPLIED]
    assert not plan.postings
