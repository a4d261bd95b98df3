from __future__ import annotations

import random
from pathlib import Path

import pytest

from core import topology
from core.errors import ConfigError
from core.settings import load_settings
from worker.failures import ATTEMPTS, FIRST_FAILED_AT, failure_headers, retry_delay_ms


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
    "env",
    [
        {"CONEKTA_INGEST_PORT": "eighty"},
        {"CONEKTA_ALLOW_UNSIGNED": "maybe"},
        {"CONEKTA_INGEST_BATCH_SIZE": "0"},
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
