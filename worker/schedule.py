"""What the worker runs on a schedule (reconcile, settle pull): one loop for both."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from core import backoff, lifecycle
from core.errors import StopRequested

RETRY_BASE = 30.0  # seconds before the first retry of a failed run


async def repeat(run: Callable[[], Awaitable[bool]], interval: float, stop: asyncio.Event) -> None:
    """`run()` every `interval` seconds until `stop`. A run that fails (returns False) is tried
    again sooner, backing off up to the interval. A stop does not wait for a run in progress: it
    is cancelled (what it had done stays; the next run finds it)."""
    failures = 0
    while not stop.is_set():
        try:
            ok = await lifecycle.unless_stopped(stop, run())
        except StopRequested:
            return
        failures = 0 if ok else failures + 1
        pause = interval
        if failures:
            pause = min(interval, backoff.delay(failures, base=RETRY_BASE, cap=interval))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
