"""Retention's pure parts (months, export verification) and the broker users' permissions."""

from __future__ import annotations

import gzip
import hashlib
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import topology
from core.errors import RetentionRefused
from ops import retention

EXCHANGES = [e.name for e in topology.EXCHANGES] + ["amq.default"]
QUEUES = [q.name for q in topology.QUEUES]


def allowed(pattern: str, names: list[str]) -> set[str]:
    """What RabbitMQ would allow: it matches the regex against each resource name."""
    return {name for name in names if re.search(pattern, name)}


def test_receiver_may_only_publish_to_the_events_exchange() -> None:
    user = topology.RECEIVER_USER
    assert allowed(user.write, EXCHANGES + QUEUES) == {topology.EVENTS_EXCHANGE}
    assert allowed(user.read, EXCHANGES + QUEUES) == set()
    assert allowed(user.configure, EXCHANGES + QUEUES) == set()


def test_worker_reads_its_queues_and_writes_fulfillment_retries_dead_letters() -> None:
    user = topology.WORKER_USER
    assert allowed(user.read, QUEUES) == {
        topology.ORDERS_QUEUE,
        topology.UNHANDLED_QUEUE,
        topology.DEAD_LETTER_QUEUE,  # moved into Postgres
    }
    retired = [q.name for q in topology.RETIRED_QUEUES]
    assert allowed(user.read, retired) == set(retired)  # drained
    assert allowed(user.write, EXCHANGES) == {  # not conekta.events: reconcile applies itself
        topology.FULFILLMENT_EXCHANGE,
        topology.RETRY_EXCHANGE,
        topology.DEAD_LETTER_EXCHANGE,
    }


def test_only_migrate_may_configure_and_the_monitor_nothing() -> None:
    everything = EXCHANGES + QUEUES
    configurers = {u.name for u in topology.USERS if allowed(u.configure, everything)}
    assert configurers == {topology.MIGRATE_USER.name}
    assert allowed(topology.MIGRATE_USER.configure, everything) == set(everything) - {"amq.default"}
    monitor = topology.MONITOR_USER
    assert not allowed(monitor.read + monitor.write + monitor.configure, everything)


def test_console_replays_dead_letters_where_they_first_went_and_reads_no_queue() -> None:
    user = topology.CONSOLE_USER
    assert allowed(user.read, QUEUES) == set()  # dead letters are read in Postgres
    assert allowed(user.write, EXCHANGES) == {
        topology.EVENTS_EXCHANGE,
        topology.FULFILLMENT_EXCHANGE,
        topology.RETRY_EXCHANGE,
        "amq.default",  # fulfillment replay: to one subscriber's queue by name
    }


def test_retry_queues_are_reached_through_the_retry_exchange() -> None:
    for tier in range(len(topology.RETRY_DELAYS_MS)):
        name = topology.retry_queue_name(topology.ORDERS_QUEUE, tier)
        (spec,) = [q for q in topology.QUEUES if q.name == name]
        assert spec.bindings == ((topology.RETRY_EXCHANGE, name),)


@pytest.mark.parametrize(
    ("today", "keep", "first_kept"),
    [
        (date(2026, 11, 27), 13, date(2025, 10, 1)),
        (date(2026, 1, 1), 1, date(2025, 12, 1)),
        (date(2026, 12, 31), 12, date(2025, 12, 1)),
    ],
)
def test_months_before(today: date, keep: int, first_kept: date) -> None:
    assert retention.months_before(today, keep) == first_kept


def test_parse_month() -> None:
    assert retention.parse_month("2025-01") == date(2025, 1, 1)
    for bad in ("2025-13", "2025", "2025-01-01", "jan"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            retention.parse_month(bad)


@given(st.text(max_size=12))
def test_parse_month_takes_a_month_or_says_what_it_expects(text: str) -> None:
    try:
        month, error = retention.parse_month(text), ""
    except ValueError as exc:
        month, error = None, str(exc)
    assert (month is not None and month.day == 1) or "expected YYYY-MM" in error


def write_export(folder: Path, lines: list[bytes]) -> tuple[Path, int, Decimal]:
    path = folder / "events-2025-01.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return path, len(lines), Decimal(sum(retention.line_checksum(line) for line in lines))


def test_an_intact_export_verifies(tmp_path: Path) -> None:
    path, rows, checksum = write_export(tmp_path, [b'{"a": 1}', b'{"b": 2}'])
    retention.verify_export(path, rows, checksum)


def test_an_export_that_differs_from_the_database_is_refused(tmp_path: Path) -> None:
    path, rows, checksum = write_export(tmp_path, [b'{"a": 1}', b'{"b": 2}'])
    with pytest.raises(RetentionRefused, match="rows exported"):
        retention.verify_export(path, rows, checksum + 1)  # same count, other content
    with pytest.raises(RetentionRefused, match="rows exported"):
        retention.verify_export(path, rows + 1, checksum)


def test_a_damaged_export_is_refused(tmp_path: Path) -> None:
    path, rows, checksum = write_export(tmp_path, [b'{"a": 1}'] * 100)
    path.write_bytes(path.read_bytes()[:-10])  # truncated after it was written
    with pytest.raises(RetentionRefused, match="sha256"):
        retention.verify_export(path, rows, checksum)
