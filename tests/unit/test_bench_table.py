"""`make bench`'s table: what it prints from a run's results (bench/__main__.py), and the
machine-speed calibration it starts with."""

from __future__ import annotations

from typing import Any

from bench import __main__ as bench_main
from bench import calibrate


def _fixed(rate: float, p50: float, p99: float) -> dict[str, Any]:
    return {
        "offered_per_s": rate,
        "events": int(rate * 10),
        "http_failures": 0,
        "webhook_to_ledger_p50_ms": p50,
        "webhook_to_ledger_p99_ms": p99,
        "http_p99_ms": 12.5,
    }


def _end_to_end() -> dict[str, Any]:
    return {
        "sustained": {"events": 15000, "events_per_s": 537.0, "http_failures": 0},
        "fixed_rate": _fixed(1000.0, 6549.7, 9410.7),
        "half_sustained_rate": _fixed(269, 42.7, 163.1),
        "memory": {"receiver": {"peak_mib": 104.7, "growth_pct": 0.2, "across_runs_pct": 38.0}},
        "sync_baseline": {"events_per_s": 61.0},
        "vs_sync_baseline": 8.8,
    }


def test_the_table_shows_both_rates_and_the_machine_speed() -> None:
    calibration = {"python_loop_5m_ms": 318.4, "rsa_verify_us": 47.9, "json_decode_3_4kb_us": 23.5}
    text = bench_main.table({"end_to_end": _end_to_end(), "calibration": calibration})
    assert "webhook->ledger @1000/s p50/p99 ms" in text
    assert "6549.7 / 9410.7" in text
    assert "webhook->ledger @269/s p50/p99 ms" in text
    assert "42.7 / 163.1" in text
    assert "half the sustained rate" in text
    assert "318.4 ms for 5M Python additions" in text
    assert "23.5 us to decode a 3.4 KB body" in text


def test_results_of_earlier_runs_still_print() -> None:
    """A result saved before the half-rate measure and the calibration existed."""
    old = _end_to_end()
    del old["half_sustained_rate"]
    text = bench_main.table({"end_to_end": old})
    assert "@1000/s" in text
    assert "half the sustained rate" not in text
    assert "this machine" not in text


def test_the_calibration_times_each_workload_once_it_is_run() -> None:
    speed = calibrate.measure()
    assert set(speed) == {"python_loop_5m_ms", "rsa_verify_us", "json_decode_3_4kb_us"}
    assert all(value > 0 for value in speed.values())
