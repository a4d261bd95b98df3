from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from core import topology
from core.errors import ConfigError, UnknownCharge
from core.settings import load_settings
from worker.failures import (
    ATTEMPTS,
    FIRST_FAILED_AT,
    FailureKind,
    failure_headers,
    kind_of,
    retry_delay_ms,
)


def test_settings_from_env_and_overrides() -> None:
    settings = load_settings(
        {
            "AMQP_URL": "amqp://x/",
            "CONEKTA_WEBHOOK_KEYS": "a.pem, b.pem",
            "CONEKTA_INGEST_PORT": "9000",
        },
        {"port": 9001, "host": None},
    )
    assert settings.amqp_url == "amqp://x/"
    assert settings.webhook_keys == (Path("a.pem"), Path("b.pem"))
    assert settings.port == 9001
    assert settings.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("value", "modes"),
    [("live,test", {True, False}), ("live", {True}), (" Test ", {False})],
)
def test_accept_modes(value: str, modes: set[bool]) -> None:
    assert load_settings({"CONEKTA_ACCEPT_MODES": value}).accept_modes == modes
    assert load_settings({}).accept_modes == {True, False}


def test_fee_tax_rate() -> None:
    assert load_settings({}).fee_tax_rate == Decimal("0.16")
    assert load_settings({"CONEKTA_FEE_TAX_RATE": " 0 "}).fee_tax_rate == 0
    assert load_settings({"CONEKTA_FEE_TAX_RATE": "0.08"}).fee_tax_rate == Decimal("0.08")


@pytest.mark.parametrize(
    "env",
    [
        {"CONEKTA_INGEST_PORT": "eighty"},
        {"CONEKTA_ALLOW_UNSIGNED": "maybe"},
        {"CONEKTA_INGEST_BATCH_SIZE": "0"},
        {"CONEKTA_INGEST_DEDUPE_MONTHS": "-1"},
        {"CONEKTA_ACCEPT_MODES": "sandbox"},
        {"CONEKTA_ACCEPT_MODES": ""},
        {"CONEKTA_FEE_TAX_RATE": "16"},
        {"CONEKTA_FEE_TAX_RATE": "-0.1"},
        {"CONEKTA_FEE_TAX_RATE": "iva"},
        {"CONEKTA_FEE_TAX_RATE": "NaN"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(env)


@pytest.mark.parametrize(("attempt", "tier"), [(0, 0), (1, 0), (2, 1), (5, 4), (50, 4)])
def test_retry_tier_is_capped(attempt: int, tier: int) -> None:
    assert topology.retry_tier(attempt) == tier


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 9])
def test_retry_delay_is_jittered_within_its_tier(attempt: int) -> None:
    ceiling = topology.RETRY_DELAYS_MS[topology.retry_tier(attempt)]
    rng = random.Random(attempt)
    delays = [retry_delay_ms(attempt, rng) for _ in range(200)]
    assert all(ceiling // 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100


def test_failure_headers_count_and_keep_first_failure() -> None:
    first = failure_headers({"received_at": "t"}, "order.paid", "q", "transient", "boom")
    assert first[ATTEMPTS] == 1 and first["received_at"] == "t"
    second = failure_headers({**first, "x-death": ["..."]}, "q", "q", "transient", "again")
    assert second[ATTEMPTS] == 2
    assert second[FIRST_FAILED_AT] == first[FIRST_FAILED_AT]
    assert second["x-original-routing-key"] == "order.paid"
    assert "x-death" not in second


def test_every_queue_is_quorum_and_at_least_once_dead_lettering_is_complete() -> None:
    exchanges = {e.name for e in topology.EXCHANGES}
    for queue in topology.QUEUES:
        assert queue.arguments["x-queue-type"] == "quorum"
        if queue.arguments.get("x-dead-letter-strategy") == "at-least-once":
            assert queue.arguments["x-overflow"] == "reject-publish"
            assert queue.arguments["x-dead-letter-exchange"] in exchanges | {""}


def test_every_queue_has_an_explicit_delivery_limit_and_a_dead_letter_target() -> None:
    """Same behaviour on RabbitMQ 3.x (no default limit) and 4.x (20, then dropped)."""
    for queue in topology.QUEUES:
        assert queue.arguments["x-delivery-limit"] == topology.DELIVERY_LIMIT, queue.name
        if queue.name != topology.PARKED_QUEUE:  # the end of the line: nobody consumes it
            assert "x-dead-letter-exchange" in queue.arguments, queue.name
    assert {q.arguments["x-delivery-limit"] for q in topology.queues(limit=3)} == {3}


def test_retired_queues_are_no_longer_declared() -> None:
    declared = {q.name for q in topology.QUEUES}
    assert not declared & {r.name for r in topology.RETIRED_QUEUES}


def test_orders_queue_arguments_are_unchanged_since_v1() -> None:
    """conekta.orders keeps its name: its arguments must be exactly what v1 declared."""
    [orders] = [q for q in topology.QUEUES if q.name == topology.ORDERS_QUEUE]
    assert orders.arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 20,
        "x-dead-letter-exchange": "conekta.dlx",
        "x-dead-letter-routing-key": "conekta.orders.dlq",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_an_unknown_charge_is_retried_under_its_own_kind() -> None:
    assert kind_of(UnknownCharge("ch")) is FailureKind.UNKNOWN_CHARGE
