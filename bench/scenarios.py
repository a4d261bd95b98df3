"""The four measures: receiver vs its floor, worker vs its floors, end to end, memory."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.asymmetric import rsa

from bench import events, loadgen, stack
from core import signature


async def _ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


def _latency_figures(result: loadgen.LoadResult) -> dict[str, float]:
    return {
        "requests_per_s": round(result.rate, 1),
        "p50_ms": round(stack.percentile(result.latencies, 50) * 1000, 2),
        "p99_ms": round(stack.percentile(result.latencies, 99) * 1000, 2),
        "failures": result.failures,
    }


async def receiver(
    services: stack.Services,
    keys: tuple[Path, Path],
    seconds: float,
    concurrency: int,
    rounds: int = 3,
) -> dict[str, Any]:
    """Floor and receiver in alternating rounds on fresh vhosts; the median round of each."""
    bodies, _, _ = events.paid_events(2000, prefix="r")
    items = loadgen.sign_all(bodies, signature.load_private_key(keys[0]))
    runs: dict[str, list[dict[str, Any]]] = {"floor": [], "receiver": []}
    for round_ in range(rounds):
        for name in ("floor", "receiver"):
            runs[name].append(
                await _receiver_run(services, keys, name, items, seconds, concurrency, round_)
            )
            await services.release()
    figures: dict[str, Any] = {
        "concurrency": concurrency,
        "seconds": seconds,
        "rounds": rounds,
        "all_rounds": runs,
    }
    for name, measured in runs.items():
        figures[name] = sorted(measured, key=lambda m: m["requests_per_s"])[len(measured) // 2]
    figures["ratio"] = round(
        figures["receiver"]["requests_per_s"] / figures["floor"]["requests_per_s"], 3
    )
    # CPU per request is steadier than req/s on a shared machine: the floor's cost over ours.
    figures["cpu_ratio"] = round(
        figures["floor"]["server_cpu_us_per_request"]
        / figures["receiver"]["server_cpu_us_per_request"],
        3,
    )
    return figures


async def _receiver_run(
    services: stack.Services,
    keys: tuple[Path, Path],
    name: str,
    items: list[loadgen.Signed],
    seconds: float,
    concurrency: int,
    round_: int,
) -> dict[str, Any]:
    _, amqp_url = await services.fresh(f"recv_{name}_{round_}")
    port = stack.free_port()
    if name == "floor":
        floor = ("-m", "bench.floor_receiver", "--amqp-url", amqp_url, "--key", str(keys[1]))
        command: tuple[str, ...] = (*floor, "--port", str(port))
    else:
        command = ("-m", "cli", "serve", "--port", str(port))
    env = stack.env_for("", amqp_url, CONEKTA_WEBHOOK_KEYS=str(keys[1]))
    async with stack.process(*command, env=env) as proc:
        await stack.wait_until(
            lambda: _ready(f"http://127.0.0.1:{port}/readyz"), 30, f"{name} ready"
        )
        url = f"http://127.0.0.1:{port}/webhooks/conekta"
        await loadgen.closed_loop(url, items, concurrency, seconds=1.0)  # warm-up
        cpu_before = stack.cpu_seconds(proc.pid)
        result = await loadgen.closed_loop(url, items, concurrency, seconds=seconds)
        cpu_us = (stack.cpu_seconds(proc.pid) - cpu_before) / len(result.latencies) * 1e6
        return {
            **_latency_figures(result),
            "server_cpu_us_per_request": round(cpu_us, 1),
            "peak_rss_mib": _mib(proc.pid),
        }


def _mib(pid: int) -> float:
    return round(stack.rss_kib(pid)[1] / 1024, 1)


async def _backlog(
    services: stack.Services,
    label: str,
    n: int,
    build: Callable[[int, str], events.Events] = events.paid_events,
) -> tuple[str, str]:
    database_url, amqp_url = await services.fresh(label)
    bodies, types, ids = build(n, label)
    await stack.publish_backlog(amqp_url, bodies, types, ids)
    return database_url, amqp_url


@dataclass(frozen=True)
class Drain:
    """A pre-filled backlog archived by some processes."""

    events_per_s: float
    cpu_us_per_event: float  # the processes' own (steadier than the rate on a shared machine)
    peak_rss_mib: float  # the first process's
    lock_waits: int  # the most seen at once in the database meanwhile
    # Postgres's CPU per event (every backend; the benchmark's own polling included, alike for
    # all), sampled twice a second while the processes run: a floor's backends leave with it.
    postgres_cpu_us_per_event: float


class _PostgresCpu:
    """Postgres's CPU against events archived, sampled at most twice a second."""

    def __init__(self, archived: int) -> None:
        self.first = (stack.cpu_seconds_of("postgres"), archived)
        self.last = self.first
        self._at = time.monotonic()

    def sample(self, archived: int) -> None:
        if time.monotonic() - self._at >= 0.5:
            self.last, self._at = (stack.cpu_seconds_of("postgres"), archived), time.monotonic()

    def us_per_event(self) -> float:
        events = self.last[1] - self.first[1]
        return round((self.last[0] - self.first[0]) / events * 1e6, 1) if events else 0.0


async def _drain_rate(
    database_url: str, n: int, processes: Sequence[tuple[str, ...]], env: dict[str, str], label: str
) -> Drain:
    """A pre-filled backlog of n archived with these processes running."""
    count = await stack.archived(database_url)
    waits = await stack.lock_waits(database_url)
    async with contextlib.AsyncExitStack() as running:
        procs = [
            await running.enter_async_context(stack.process(*args, env={**env, **_metrics_port()}))
            for args in processes
        ]
        most_waits = 0

        async def started() -> bool:
            return await count() > 0

        async def finished() -> bool:
            nonlocal most_waits
            most_waits = max(most_waits, await waits())
            archived = await count()
            postgres.sample(archived)
            return archived >= n

        first = await stack.wait_until(started, 60, f"{label} start")
        at_first = await count()
        postgres = _PostgresCpu(at_first)
        cpu_first = sum(stack.cpu_seconds(p.pid) for p in procs)
        last = await stack.wait_until(finished, 600, f"{label} backlog applied")
        cpu = sum(stack.cpu_seconds(p.pid) for p in procs) - cpu_first
        done = n - at_first
        return Drain(
            done / (last - first),
            cpu / done * 1e6,
            _mib(procs[0].pid),
            most_waits,
            postgres.us_per_event(),
        )


def _metrics_port() -> dict[str, str]:
    return {"CONEKTA_INGEST_WORKER_METRICS_PORT": str(stack.free_port())}


async def _worker_rate(
    services: stack.Services,
    label: str,
    n: int,
    workers: int = 1,
    build: Callable[[int, str], events.Events] = events.paid_events,
    **env: str,
) -> Drain:
    """The worker draining a fresh backlog. Each drain's database is dropped once it is measured,
    so every drain, the worker's and its floor's, starts from the same state: no other run's
    dirty pages in Postgres's shared buffers to write out first."""
    database_url, amqp_url = await _backlog(services, label, n, build)
    process_env = stack.env_for(database_url, amqp_url, **env)
    work = [("-m", "cli", "work")] * workers
    try:
        return await _drain_rate(database_url, n, work, process_env, label)
    finally:
        await services.release()


async def _floor_rate(services: stack.Services, n: int, label: str = "floor") -> Drain:
    """The no-logic floor of the worker's whole job (bench/worker_floor.py), measured alike."""
    database_url, amqp_url = await _backlog(services, label, n)
    floor = (
        "-m",
        "bench.worker_floor",
        "--amqp-url",
        amqp_url,
        "--database-url",
        database_url,
        "--n",
        str(n),
    )
    env = stack.env_for(database_url, amqp_url)
    try:
        return await _drain_rate(database_url, n, [floor], env, label)
    finally:
        await services.release()


async def _bare_rate(services: stack.Services, n: int) -> float:
    _, amqp_url = await services.fresh("bare")
    bodies, types, ids = events.paid_events(n, prefix="bare")
    await stack.publish_backlog(amqp_url, bodies, types, ids)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bare_consumer",
        "--amqp-url",
        amqp_url,
        "--n",
        str(n),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return float(out.decode().strip())


async def _against_floor(
    services: stack.Services, n: int, rounds: int
) -> tuple[Drain, Drain, dict[str, Any]]:
    """The worker and its floor in alternating rounds, each on a fresh backlog: this machine's speed
    drifts between one drain and the next (floors 25 % apart in one session), so each round's
    ratios compare neighbours and the median round's are reported. Returns the round with the
    median rate ratio, and every round's figures."""
    pairs = []
    for round_ in range(rounds):
        pairs.append(
            (
                await _worker_rate(services, f"batched_{round_}", n),
                await _floor_rate(services, n, f"floor_{round_}"),
            )
        )
    by_rate = sorted(pairs, key=lambda pair: pair[0].events_per_s / pair[1].events_per_s)
    cpu_ratios = sorted(floor.cpu_us_per_event / one.cpu_us_per_event for one, floor in pairs)
    one, floor = by_rate[len(by_rate) // 2]
    figures = {
        "rounds": [
            {
                "batched_events_per_s": round(one.events_per_s, 1),
                "floor_events_per_s": round(floor.events_per_s, 1),
                "batched_cpu_us_per_event": round(one.cpu_us_per_event, 1),
                "floor_cpu_us_per_event": round(floor.cpu_us_per_event, 1),
            }
            for one, floor in pairs
        ],
        "batched_cpu_vs_floor": round(cpu_ratios[len(cpu_ratios) // 2], 3),
    }
    return one, floor, figures


async def worker(services: stack.Services, n: int, n_single: int, rounds: int) -> dict[str, Any]:
    one, floor_drain, against_floor = await _against_floor(services, n, rounds)
    two_drain = await _worker_rate(services, "two", n, workers=2)
    single_drain = await _worker_rate(services, "single", n_single, CONEKTA_INGEST_BATCH_SIZE="1")
    mixed_drain = await _worker_rate(services, "mixed", n, build=events.mixed_events)
    bare = await _bare_rate(services, n)
    batched, batched_cpu = one.events_per_s, one.cpu_us_per_event
    floor, floor_cpu = floor_drain.events_per_s, floor_drain.cpu_us_per_event
    two, two_cpu = two_drain.events_per_s, two_drain.cpu_us_per_event
    single, single_cpu = single_drain.events_per_s, single_drain.cpu_us_per_event
    mixed, mixed_cpu = mixed_drain.events_per_s, mixed_drain.cpu_us_per_event
    return {
        "backlog": n,
        "backlog_single": n_single,
        "body_bytes": events.mean_size(events.paid_events(100)[0]),
        "floor_events_per_s": round(floor, 1),
        "batched_vs_floor": round(batched / floor, 3),
        "floor_cpu_us_per_event": round(floor_cpu, 1),
        "batched_cpu_vs_floor": against_floor["batched_cpu_vs_floor"],  # the median round's
        "rounds_against_floor": against_floor["rounds"],
        "two_workers_events_per_s": round(two, 1),
        "two_workers_vs_one": round(two / batched, 2),
        "two_workers_cpu_us_per_event": round(two_cpu, 1),
        "lock_waits_max_one_worker": one.lock_waits,
        "lock_waits_max_two_workers": two_drain.lock_waits,
        "postgres_cpu_us_per_event": one.postgres_cpu_us_per_event,
        "floor_postgres_cpu_us_per_event": floor_drain.postgres_cpu_us_per_event,
        "batched_events_per_s": round(batched, 1),
        "one_per_transaction_events_per_s": round(single, 1),
        "bare_consume_ack_events_per_s": round(bare, 1),
        "batched_vs_single": round(batched / single, 2),
        "batched_vs_bare": round(batched / bare, 3),
        "mixed_events_per_s": round(mixed, 1),
        "mixed_vs_batched": round(mixed / batched, 2),
        "mixed_worker_cpu_us_per_event": round(mixed_cpu, 1),
        "batched_worker_cpu_us_per_event": round(batched_cpu, 1),
        "single_worker_cpu_us_per_event": round(single_cpu, 1),
        "peak_rss_mib": one.peak_rss_mib,
    }


async def end_to_end(
    services: stack.Services, keys: tuple[Path, Path], n: int, rate: float, rate_seconds: float
) -> dict[str, Any]:
    database_url, amqp_url = await services.fresh("e2e")
    key = signature.load_private_key(keys[0])
    port = stack.free_port()
    env = stack.env_for(
        database_url,
        amqp_url,
        CONEKTA_WEBHOOK_KEYS=str(keys[1]),
        CONEKTA_INGEST_WORKER_METRICS_PORT=str(stack.free_port()),
    )
    url = f"http://127.0.0.1:{port}/webhooks/conekta"
    count = await stack.archived(database_url)
    memory: dict[str, list[float]] = {"receiver": [], "worker": []}
    async with (
        stack.process("-m", "cli", "serve", "--port", str(port), env=env) as server,
        stack.process("-m", "cli", "work", env=env) as work,
    ):
        await stack.wait_until(
            lambda: _ready(url.replace("/webhooks/conekta", "/readyz")), 30, "receiver ready"
        )
        sampler = asyncio.create_task(
            _sample_rss({"receiver": server.pid, "worker": work.pid}, memory)
        )
        # Sustained: as fast as the receiver takes them, until the last one is committed.
        bodies, _, _ = events.paid_events(n, prefix="sus")
        items = loadgen.sign_all(bodies, key)
        started = time.monotonic()
        sustained = await loadgen.closed_loop(url, items, 64)
        await stack.wait_until(lambda: _at_least(count, n), 300, "sustained load applied")
        sustained_rate = n / (time.monotonic() - started)
        steady = {name: len(samples) for name, samples in memory.items()}
        # Latency at the target's offered rate, then at half this machine's sustained rate:
        # the first is over capacity on a slow machine (it then measures a queue, not the
        # pipeline), the second says what the pipeline adds when it keeps up.
        at_rate = await _fixed_rate(url, key, rate, rate_seconds, "lat", database_url, count)
        half = round(sustained_rate / 2)
        at_half = await _fixed_rate(url, key, half, rate_seconds, "half", database_url, count)
        sampler.cancel()
    return {
        "sustained": {
            "events": n,
            "events_per_s": round(sustained_rate, 1),
            "http_failures": sustained.failures,
        },
        "fixed_rate": at_rate,
        "half_sustained_rate": at_half,
        "memory": {name: _memory(samples, steady[name]) for name, samples in memory.items()},
    }


async def _fixed_rate(
    url: str,
    key: rsa.RSAPrivateKey,
    rate: float,
    seconds: float,
    prefix: str,
    database_url: str,
    count: Callable[[], Awaitable[int]],
) -> dict[str, Any]:
    """Webhooks offered at `rate` for `seconds` whatever the answers' speed (as they arrive),
    and how long each took from its send to its commit in the ledger."""
    bodies, _, _ = events.paid_events(int(rate * seconds), prefix=prefix)
    items = loadgen.sign_all(bodies, key)
    expected = await count() + len(items)  # everything before was applied already
    offered = await loadgen.open_loop(url, items, rate)
    await stack.wait_until(lambda: _at_least(count, expected), 120, f"{prefix} load applied")
    latencies = await _webhook_to_ledger(database_url, offered.sent_at)
    return {
        "offered_per_s": rate,
        "events": len(items),
        "http_failures": offered.failures,
        "webhook_to_ledger_p50_ms": round(stack.percentile(latencies, 50), 1),
        "webhook_to_ledger_p99_ms": round(stack.percentile(latencies, 99), 1),
        "http_p99_ms": round(stack.percentile(offered.latencies, 99) * 1000, 2),
    }


async def sync_baseline(
    services: stack.Services, keys: tuple[Path, Path], n: int, processes: int = 2
) -> dict[str, Any]:
    """The same job done synchronously in the request (bench/sync_baseline.py), under the same
    closed loop: events per second until the last one is committed (at its 200)."""
    database_url, _ = await services.fresh("sync")
    key = signature.load_private_key(keys[0])
    port = stack.free_port()
    url = f"http://127.0.0.1:{port}/webhooks/conekta"
    args = ("-m", "bench.sync_baseline", "--port", str(port), "--database-url", database_url)
    env = stack.env_for(database_url, "amqp://unused/")
    async with contextlib.AsyncExitStack() as servers:
        for _ in range(processes):
            await servers.enter_async_context(stack.process(*args, "--key", str(keys[1]), env=env))
        await stack.wait_until(
            lambda: _ready(url.replace("/webhooks/conekta", "/readyz")), 30, "baseline ready"
        )
        bodies, _, _ = events.paid_events(n, prefix="sync")
        items = loadgen.sign_all(bodies, key)
        started = time.monotonic()
        result = await loadgen.closed_loop(url, items, 64)
        elapsed = time.monotonic() - started
    return {
        "processes": processes,
        "events": n,
        "events_per_s": round(n / elapsed, 1),
        "http_failures": result.failures,
    }


async def _at_least(count: Any, n: int) -> bool:
    return bool(await count() >= n)


async def _sample_rss(pids: dict[str, int], into: dict[str, list[float]]) -> None:
    while True:
        for name, pid in pids.items():
            into[name].append(stack.rss_kib(pid)[0] / 1024)
        await asyncio.sleep(0.5)


def _memory(samples: list[float], steady: int) -> dict[str, float]:
    """Growth under one load (the sustained run's samples: a leak shows there), the peak over
    the whole run, and the growth across both runs: the fixed-rate run holds far more requests
    open at once (~500 at its HTTP p99 against 64), and a process's RSS steps up with its
    concurrency and stays there (the allocator keeps its arenas), which is not growth."""
    figures = _growth(samples[:steady])
    figures["peak_mib"] = round(max(samples, default=0), 1)
    figures["across_runs_pct"] = _growth(samples).get("growth_pct", 0.0)
    return figures


def _growth(samples: list[float]) -> dict[str, float]:
    """Peak, and RSS over the second quarter of the run against the last quarter."""
    if len(samples) < 8:
        return {"peak_mib": round(max(samples, default=0), 1)}
    quarter = len(samples) // 4
    early = sum(samples[quarter : 2 * quarter]) / quarter
    late = sum(samples[-quarter:]) / quarter
    return {
        "peak_mib": round(max(samples), 1),
        "early_mib": round(early, 1),
        "late_mib": round(late, 1),
        "growth_pct": round((late / early - 1) * 100, 1),
    }


async def _webhook_to_ledger(database_url: str, sent_at: dict[str, float]) -> list[float]:
    connection = await asyncpg.connect(database_url)
    rows = await connection.fetch(
        "SELECT event_id, extract(epoch FROM applied_at) AS at FROM events "
        "WHERE event_id = ANY($1::text[])",
        list(sent_at),
    )
    await connection.close()
    return [(float(r["at"]) - sent_at[r["event_id"]]) * 1000 for r in rows]
