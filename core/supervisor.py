"""Long-running tasks that heal by themselves and shout: one supervisor per process.

`supervisor.run("outbox", relay.run)` runs the coroutine function until it returns (its work is
done: asked to stop). An exception is logged with its error, counted
(`conekta_task_failures_total{task}`), and the task starts again after `core.backoff`'s delay;
when the cause is gone it simply keeps running, no process restart needed.

Shouting: while a task is failing (between a failure and `healthy_after` seconds of running
without one) `ready()` is false, so /readyz answers 503. A task failing for longer than
`give_up_after` seconds sets `gave_up` and the stop event: the process drains and exits
non-zero, and the orchestrator replaces it. Never a half-alive process that looks healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from prometheus_client import Counter, Gauge

from core import backoff, lifecycle
from core.settings import Settings

log = structlog.get_logger(__name__)

FAILURES = Counter(
    "conekta_task_failures_total",
    "Exceptions that ended a supervised task (it restarts).",
    ["task"],
)
FAILING = Gauge(
    "conekta_task_failing", "1 while a supervised task keeps failing (readiness is down).", ["task"]
)


# Seconds the tasks have to finish once asked to stop, within the orchestrators' grace periods
# (compose 30 s, Kubernetes 60 s), leaving time for the outbox's last flush.
STOP_GRACE = 15.0


@dataclass
class _State:
    failures: int = 0  # in the current streak
    failing_since: float | None = None  # monotonic time of the streak's first failure
    started_at: float = 0.0
    running: bool = False


class Supervisor:
    def __init__(
        self,
        stop: asyncio.Event,
        *,
        healthy_after: float = 10.0,
        give_up_after: float = 300.0,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        self.stop = stop
        self._healthy_after = healthy_after
        self._give_up_after = give_up_after
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._states: dict[str, _State] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.gave_up: str | None = None  # the task that failed past the bound

    def run(self, name: str, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `work()` under supervision, restarting it on failure, until it returns."""
        if name in self._states:
            raise ValueError(f"task {name!r} is supervised already")
        state = self._states[name] = _State()
        FAILING.labels(name).set_function(lambda: float(self._failing(state, time.monotonic())))
        task = asyncio.create_task(self._supervise(name, work), name=name)
        self._tasks.append(task)
        return task

    def ready(self) -> bool:
        """False while any task is failing: the readiness check."""
        now = time.monotonic()
        return not any(self._failing(state, now) for state in self._states.values())

    def failing(self) -> list[str]:
        now = time.monotonic()
        return [name for name, state in self._states.items() if self._failing(state, now)]

    async def wait(self, grace: float = STOP_GRACE) -> None:
        """Until every task has returned (after stop); a task still running `grace` seconds
        later (waiting on a broker node that is gone, say) is cancelled: what it held unacked
        is redelivered, and the process still stops on time and cleanly."""
        try:
            _, late = await asyncio.wait(self._tasks, timeout=grace) if self._tasks else ((), ())
            for task in late:
                log.warning("task did not stop in time: cancelled", task=task.get_name())
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _failing(self, state: _State, now: float) -> bool:
        if state.failing_since is None:
            return False
        if state.running and now - state.started_at >= self._healthy_after:
            # Ran long enough since its last failure: the streak is over.
            state.failures, state.failing_since = 0, None
            return False
        return True

    async def _supervise(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        state = self._states[name]
        while True:
            state.started_at, state.running = time.monotonic(), True
            try:
                await work()
                return
            except asyncio.CancelledError as exc:
                if lifecycle.cancelled_here():
                    raise
                failure: BaseException = exc  # a library's, from a connection that died
            except Exception as exc:
                failure = exc
            if self._failed(name, state, failure):
                return
            delay = backoff.delay(state.failures, base=self._base_delay, cap=self._max_delay)
            if await _stopped_within(self.stop, delay):
                return

    def _failed(self, name: str, state: _State, exc: BaseException) -> bool:
        """Count and log a failure; True when the task failed past the bound (giving up)."""
        now = time.monotonic()
        self._failing(state, now)  # closes a streak the task had recovered from
        state.running = False
        state.failures += 1
        state.failing_since = state.failing_since or now
        FAILURES.labels(name).inc()
        failing_for = now - state.failing_since
        log.error(
            "supervised task failed, restarting",
            task=name,
            error=f"{type(exc).__name__}: {exc}",
            failures=state.failures,
            failing_for=round(failing_for, 1),
            exc_info=exc,
        )
        if failing_for > self._give_up_after:
            self._give_up(name)
            return True
        return False

    def _give_up(self, name: str) -> None:
        log.critical(
            "supervised task keeps failing: stopping the process",
            task=name,
            bound=self._give_up_after,
        )
        self.gave_up = name
        self.stop.set()


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def for_settings(settings: Settings, stop: asyncio.Event) -> Supervisor:
    """The process's supervisor, with the configured bounds."""
    return Supervisor(
        stop, healthy_after=settings.task_healthy_after, give_up_after=settings.task_give_up_after
    )
