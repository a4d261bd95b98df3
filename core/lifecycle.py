"""Process lifecycle: SIGTERM/SIGINT become a stop event, HTTP sites live until it is set, and the
event loop is uvloop where available."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable
from typing import TypeVar

import structlog
from aiohttp import web

from core.errors import StopRequested

log = structlog.get_logger(__name__)
T = TypeVar("T")
CANCEL_GRACE = 3.0  # seconds a cancelled start-up wait has to end before it is left behind
# The cyclic collector's first threshold: collect once this many more containers are alive than
# at the last collection. The default (700) ran ~120 collections a second in a busy worker, 5 %
# of its CPU spent re-walking the batch in hand (a decoded body is ~100 containers) and everything
# imported; what the services free is nearly all freed by reference counting at once.
GC_THRESHOLD = 50_000


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the process then drains and exits."""
    stop = asyncio.Event()

    def stopping() -> None:
        log.info("stop signal received")
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    return stop


async def unless_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T:
    """`work`'s result; or, when `stop` is set first, `work` cancelled and StopRequested raised.
    A start-up wait (database, migrations, topology) must not outlive a SIGTERM."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            # Bounded: aio-pika's connect can swallow the cancellation of a handshake that
            # hangs and go on trying; the process must stop all the same.
            await asyncio.wait({task}, timeout=CANCEL_GRACE)
    if not task.done() or task.cancelled():
        raise StopRequested("asked to stop while starting")
    return task.result()


def cancelled_here() -> bool:
    """Whether the running task itself is being cancelled (its `cancel()` was called).

    aiormq ends the futures pending on a connection that died with CancelledError as their
    *exception*: a library's CancelledError is a failure to handle like any other, not a request
    to stop. Only a task that is being cancelled must let CancelledError through.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def quietly(what: str, closing: Awaitable[object]) -> None:
    """Close something on the way out: an error (a library's CancelledError included) is logged,
    never raised, so one dead connection cannot turn a clean stop into a crash."""
    try:
        await closing
    except asyncio.CancelledError as exc:
        if cancelled_here():
            raise
        log.warning("could not close cleanly", what=what, error=repr(exc))
    except Exception as exc:
        log.warning("could not close cleanly", what=what, error=repr(exc))


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port; the caller cleans the returned runner up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def tune_gc() -> None:
    """What start-up made (modules, settings, the app) is kept out of every later collection,
    and collections come far less often (GC_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def run(coroutine: Awaitable[int]) -> int:
    """Run the command's coroutine on uvloop when installed, with the collector tuned."""
    tune_gc()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]
