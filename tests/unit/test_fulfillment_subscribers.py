"""Fulfillment subscribers: their names (CONEKTA_FULFILLMENT_SUBSCRIBERS) and what their broker
users' permissions reach (core.topology.subscriber_user), as RabbitMQ matches them (re.search)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import topology
from core.errors import BadRequest, ConfigError
from core.settings import load_settings
from ops import fulfillment

PROJECT_NAMES = (
    [e.name for e in topology.EXCHANGES]
    + [q.name for q in topology.QUEUES]
    + [r.name for r in topology.RETIRED_QUEUES]
    + ["amq.default"]
)
names = st.from_regex(r"\A[a-z][a-z0-9-]{0,39}\Z").filter(
    lambda n: n not in topology.RESERVED_SUBSCRIBER_NAMES
)


def own_names(name: str) -> list[str]:
    spec = topology.subscriber(name)
    return [spec.queue.name, spec.dead_letter_queue.name, spec.exchange.name]


def test_subscribers_come_from_the_environment() -> None:
    env = {"CONEKTA_FULFILLMENT_SUBSCRIBERS": " shipping, billing ,"}
    assert load_settings(env).fulfillment_subscribers == ("shipping", "billing")
    assert load_settings({}).fulfillment_subscribers == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("shipping,unrouted", "clashes with the project's own queues"),
        ("shipping,shipping", "named twice"),
        ("ship.ping", "no dots"),
        ("Shipping", "lower-case"),
        ("a" * 41, "1-40"),
        ("9lives", "starting with a letter"),
    ],
)
def test_bad_subscriber_names_are_refused_clearly(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        load_settings({"CONEKTA_FULFILLMENT_SUBSCRIBERS": value})
    assert "CONEKTA_FULFILLMENT_SUBSCRIBERS" in str(raised.value)


def test_the_user_permissions_are_as_documented() -> None:
    user = topology.subscriber_user("shipping")
    assert user.name == "conekta-fulfillment-shipping"
    assert user.configure == user.write == r"^conekta\.fulfillment\.shipping(\..+)?$"
    assert user.read == r"^(conekta\.fulfillment\.shipping(\..+)?|conekta\.fulfillment)$"


@given(names, names)
def test_a_subscriber_reaches_its_own_names_and_nothing_else(name: str, other: str) -> None:
    user = topology.subscriber_user(name)
    for own in own_names(name):
        assert all(re.search(p, own) for p in (user.configure, user.write, user.read))
    foreign = PROJECT_NAMES + (own_names(other) if other != name else [])
    for resource in foreign:
        assert not re.search(user.configure, resource), resource
        assert not re.search(user.write, resource), resource
        # read: only conekta.fulfillment itself (binding to it needs read on the exchange)
        assert bool(re.search(user.read, resource)) == (
            resource == topology.FULFILLMENT_EXCHANGE
        ), resource


def test_a_subscriber_queue_is_quorum_with_its_own_dead_letters_and_limit() -> None:
    spec = topology.subscriber("billing", ("order.paid", "order.refunded"))
    assert spec.queue.name == "conekta.fulfillment.billing"
    assert spec.queue.arguments["x-queue-type"] == "quorum"
    assert spec.queue.arguments["x-delivery-limit"] == topology.DELIVERY_LIMIT
    assert spec.queue.arguments["x-dead-letter-exchange"] == spec.exchange.name
    assert spec.queue.bindings == (
        (topology.FULFILLMENT_EXCHANGE, "order.paid"),
        (topology.FULFILLMENT_EXCHANGE, "order.refunded"),
    )
    assert spec.dead_letter_queue.bindings == ((spec.exchange.name, ""),)
    with pytest.raises(ValueError, match="clashes"):
        topology.subscriber("unrouted")


def test_a_replay_goes_only_to_a_configured_subscribers_queue() -> None:
    configured = ("shipping", "billing")
    fulfillment.Selection("conekta.fulfillment.billing").check(configured)
    for queue in (
        topology.ORDERS_QUEUE,
        topology.FULFILLMENT_UNROUTED_QUEUE,
        "conekta.fulfillment.billing.dead-letters",
        "conekta.fulfillment.other",
    ):
        with pytest.raises(BadRequest, match="not a configured subscriber's queue"):
            fulfillment.Selection(queue).check(configured)
    with pytest.raises(BadRequest, match="set CONEKTA_FULFILLMENT_SUBSCRIBERS"):
        fulfillment.Selection("conekta.fulfillment.billing").check(())
    with pytest.raises(BadRequest, match="unknown event type"):
        fulfillment.Selection("conekta.fulfillment.billing", event_type="x").check(configured)
    later, earlier = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(BadRequest, match="since must be before until"):
        fulfillment.Selection("conekta.fulfillment.billing", later, earlier).check(configured)


def test_a_replay_names_its_queue_and_filters_for_the_audit_trail() -> None:
    selection = fulfillment.Selection(
        "conekta.fulfillment.billing",
        since=datetime(2026, 11, 1, tzinfo=UTC),
        event_type="order.paid",
        order_id="ord_1",
    )
    assert selection.target() == (
        "queue=conekta.fulfillment.billing since=2026-11-01T00:00:00+00:00 type=order.paid"
        " order=ord_1"
    )
    assert fulfillment.Selection("conekta.fulfillment.billing").target() == (
        "queue=conekta.fulfillment.billing all"
    )
    # An order's message ids, exactly: ful_<order>_<24 hex> (the store matches the length too).
    assert selection.filter.params()["order_prefix"] == "ful_ord_1_"
