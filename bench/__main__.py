"""`make bench`: every figure next to its floor, as a table and as JSON (bench/results/)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

from bench import calibrate, scenarios, stack
from testkit import signing

RESULTS = Path(__file__).parent / "results"
TARGETS = {
    "receiver / floor": ">= 0.9 by CPU",
    "worker / floor": ">= 0.9 by events/s and by CPU",
    "two workers / one": ">= 1.0",
    "worker batched": ">= 4x one-per-transaction",
    "end to end": ">= 2x the synchronous baseline (aim 3x)",
    "webhook-to-ledger p99 @1000/s": "< 250 ms",
    "memory": "growth <= 10% under one load",
}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    keys = signing.key_pair()  # the one publish_backlog signs with, and the worker checks
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "calibration": calibrate.measure(),
    }
    async with stack.services() as services:
        if args.only in (None, "receiver"):
            print("receiver vs floor ...", file=sys.stderr)
            results["receiver"] = await scenarios.receiver(services, keys, args.seconds, 32)
        if args.only in (None, "worker"):
            print("worker ...", file=sys.stderr)
            results["worker"] = await scenarios.worker(
                services, args.events, args.events_single, args.rounds
            )
        if args.only in (None, "end_to_end"):
            print("end to end ...", file=sys.stderr)
            results["end_to_end"] = await scenarios.end_to_end(
                services, keys, args.e2e_events, args.rate, args.rate_seconds
            )
            print("synchronous baseline ...", file=sys.stderr)
            baseline = await scenarios.sync_baseline(services, keys, args.baseline_events)
            end_to_end = results["end_to_end"]
            end_to_end["sync_baseline"] = baseline
            end_to_end["vs_sync_baseline"] = round(
                end_to_end["sustained"]["events_per_s"] / baseline["events_per_s"], 2
            )
    return results


Row = tuple[str, str, str, str]


def _receiver_rows(r: dict[str, Any]) -> list[Row]:
    mine, floor = r["receiver"], r["floor"]
    return [
        (
            "receiver req/s (c=32)",
            f"{mine['requests_per_s']:,.0f}",
            f"floor {floor['requests_per_s']:,.0f}",
            f"ratio {r['ratio']:.2f}",
        ),
        (
            "receiver CPU us/request",
            f"{mine['server_cpu_us_per_request']}",
            f"floor {floor['server_cpu_us_per_request']}",
            f"ratio {r['cpu_ratio']:.2f}",
        ),
        (
            "receiver p50 / p99 ms",
            f"{mine['p50_ms']} / {mine['p99_ms']}",
            f"floor {floor['p50_ms']} / {floor['p99_ms']}",
            "",
        ),
    ]


def _worker_rows(w: dict[str, Any]) -> list[Row]:
    return [
        (
            f"worker events/s ({w['body_bytes']} B bodies)",
            f"{w['batched_events_per_s']:,.0f}",
            f"floor {w['floor_events_per_s']:,.0f}",
            f"ratio {w['batched_vs_floor']:.2f}",
        ),
        (
            "worker CPU us/event vs floor",
            f"{w['batched_worker_cpu_us_per_event']}",
            f"floor {w['floor_cpu_us_per_event']}",
            f"ratio {w['batched_cpu_vs_floor']:.2f}",
        ),
        (
            "postgres CPU us/event",
            f"{w['postgres_cpu_us_per_event']}",
            f"floor {w['floor_postgres_cpu_us_per_event']}",
            "every backend, polling included",
        ),
        (
            "two workers events/s",
            f"{w['two_workers_events_per_s']:,.0f}",
            f"max lock waits {w['lock_waits_max_two_workers']}",
            f"vs one {w['two_workers_vs_one']:.2f}x",
        ),
        (
            "worker batched events/s",
            f"{w['batched_events_per_s']:,.0f}",
            f"bare consume+ack {w['bare_consume_ack_events_per_s']:,.0f}",
            f"ratio {w['batched_vs_bare']:.2f}",
        ),
        (
            "worker one-per-tx events/s",
            f"{w['one_per_transaction_events_per_s']:,.0f}",
            "",
            f"batched {w['batched_vs_single']:.1f}x",
        ),
        (
            "worker CPU us/event",
            f"{w['batched_worker_cpu_us_per_event']}",
            f"one-per-tx {w['single_worker_cpu_us_per_event']}",
            "",
        ),
        (
            "worker mixed events/s",
            f"{w.get('mixed_events_per_s', 0):,.0f}",
            "refunds, chargebacks among payments",
            f"vs payments only {w.get('mixed_vs_batched', 0):.2f}",
        ),
    ]


def _end_to_end_rows(e: dict[str, Any]) -> list[Row]:
    fixed = e["fixed_rate"]
    rows: list[Row] = [
        (
            "end to end events/s",
            f"{e['sustained']['events_per_s']:,.0f}",
            f"sync baseline {e.get('sync_baseline', {}).get('events_per_s', 0):,.0f}",
            f"ratio {e.get('vs_sync_baseline', 0):.2f}",
        ),
        (
            f"webhook->ledger @{fixed['offered_per_s']:.0f}/s p50/p99 ms",
            f"{fixed['webhook_to_ledger_p50_ms']} / {fixed['webhook_to_ledger_p99_ms']}",
            "",
            "",
        ),
    ]
    half = e.get("half_sustained_rate")
    if half:
        rows.append(
            (
                f"webhook->ledger @{half['offered_per_s']:.0f}/s p50/p99 ms",
                f"{half['webhook_to_ledger_p50_ms']} / {half['webhook_to_ledger_p99_ms']}",
                "half the sustained rate",
                f"HTTP p99 {half['http_p99_ms']} ms",
            )
        )
    for name, m in e["memory"].items():
        rows.append(
            (
                f"{name} RSS MiB peak",
                f"{m['peak_mib']}",
                f"{m.get('early_mib', '-')} -> {m.get('late_mib', '-')}",
                f"growth {m.get('growth_pct', '-')}% (across runs {m.get('across_runs_pct')}%)",
            )
        )
    return rows


def table(results: dict[str, Any]) -> str:
    builders = {"receiver": _receiver_rows, "worker": _worker_rows, "end_to_end": _end_to_end_rows}
    rows = [row for key, build in builders.items() if key in results for row in build(results[key])]
    width = max(len(row[0]) for row in rows)
    lines = [f"{'measure':{width}}  {'value':>14}  {'floor / context':28}  note"]
    lines += [f"{a:{width}}  {b:>14}  {c:28}  {d}" for a, b, c, d in rows]
    if "calibration" in results:
        speed = results["calibration"]
        lines.append(
            f"\nthis machine: {speed['python_loop_5m_ms']} ms for 5M Python additions, "
            f"{speed['rsa_verify_us']} us per RSA-2048 verify, "
            f"{speed.get('json_decode_3_4kb_us')} us to decode a 3.4 KB body"
        )
    lines.append("\ntargets: " + "; ".join(f"{k} {v}" for k, v in TARGETS.items()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="receiver run length")
    parser.add_argument("--events", type=int, default=20000, help="worker backlog")
    parser.add_argument(
        "--events-single", type=int, default=3000, help="backlog for the one-per-transaction path"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of the worker and its floor (the median round is reported)",
    )
    parser.add_argument("--e2e-events", type=int, default=15000)
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=4000,
        help="the synchronous baseline's load (it runs at ~150/s here: its rate is steady by then)",
    )
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument(
        "--only",
        choices=["receiver", "worker", "end_to_end"],
        help="run one measure (the table shows what was run)",
    )
    args = parser.parse_args()
    # uvloop, as the services run: the load generator and the polling share the measured CPU.
    results = uvloop.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{stack.RUN_ID}.json"
    path.write_text(json.dumps(results, indent=2))
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nall figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
