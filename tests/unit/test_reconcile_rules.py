"""The pure parts of reconciling: the default window, comparing orders, a checkout answer as an
event, and the settings that hold the API key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import ConfigError, UnapplicableEvent
from core.settings import load_settings
from domain.checkout import event_from_order
from domain.order_event import parse_order_event
from testkit.events import order_event_document, order_of
from worker.order_sync import compare
from worker.reconcile import FIRST_RUN, OVERLAP, SETTLE, default_window

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_a_first_run_looks_three_days_back_and_leaves_the_last_minutes_to_webhooks() -> None:
    assert default_window(None, NOW, None, None) == (NOW - FIRST_RUN, NOW - SETTLE)


def test_a_later_run_starts_where_the_last_success_ended() -> None:
    last = NOW - timedelta(minutes=20)
    assert default_window(last, NOW, None, None) == (last - OVERLAP, NOW - SETTLE)


def test_a_given_window_wins() -> None:
    since, until = NOW - timedelta(days=30), NOW - timedelta(days=29)
    assert default_window(NOW, NOW, since, until) == (since, until)


def test_compare_names_each_differing_field() -> None:
    ours = {"status": "pending_payment", "amount": 7000, "currency": "MXN"}
    theirs = {"payment_status": "paid", "amount": 7500, "currency": "MXN", "amount_refunded": 0}
    found = {(d.field, d.ours, d.conekta) for d in compare("ord_1", ours, theirs)}
    assert found == {("status", "pending_payment", "paid"), ("amount", 7000, 7500)}


def test_compare_refunds_once_the_projection_has_them() -> None:
    ours = {"status": "paid", "amount": 100, "currency": "MXN", "amount_refunded": 0}
    theirs = {"payment_status": "paid", "amount": 100, "currency": "MXN", "amount_refunded": 40}
    assert [d.field for d in compare("ord_1", ours, theirs)] == ["amount_refunded"]


def test_compare_an_order_one_side_does_not_know() -> None:
    [missing] = compare("ord_1", None, {"payment_status": "paid"})
    assert (missing.field, missing.ours, missing.conekta) == ("order", None, "paid")
    [unknown] = compare("ord_1", {"status": "paid"}, None)
    assert (unknown.field, unknown.ours, unknown.conekta) == ("order", "paid", None)


def test_a_paid_checkout_answer_is_the_order_paid_event_it_amounts_to() -> None:
    order = {**order_of(order_event_document("order.paid", "ord_c")), "created_at": 1_700_000_000}
    event = parse_order_event(event_from_order(order))
    assert (event.type, event.order_id, event.amount) == ("order.paid", "ord_c", order["amount"])
    assert event.event_id == "checkout_ord_c_paid"  # the same answer twice: the same event
    assert [c.id for c in event.paid_charges] == ["ch_ord_c"]  # the webhook's business key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"payment_status": "pre_authorized"}, "payment_status 'pre_authorized'"),
        ({"object": "customer"}, "not an order"),
        ({"created_at": None}, "created_at"),
    ],
)
def test_a_checkout_answer_with_nothing_to_book_is_refused(
    change: dict[str, object], message: str
) -> None:
    order = {**order_of(order_event_document("order.paid", "ord_c")), "created_at": 1, **change}
    with pytest.raises(UnapplicableEvent, match=message):
        event_from_order(order)


def test_the_api_key_comes_from_the_environment_and_never_shows() -> None:
    settings = load_settings({"CONEKTA_API_KEY": "key_secret", "CONEKTA_RECONCILE_INTERVAL": "60"})
    assert settings.conekta_api_key == "key_secret"
    assert settings.reconcile_interval == 60
    assert "key_secret" not in repr(settings)
    assert load_settings({"CONEKTA_API_KEY": " "}).conekta_api_key is None
    with pytest.raises(ConfigError):
        load_settings({"CONEKTA_RECONCILE_INTERVAL": "0"})
