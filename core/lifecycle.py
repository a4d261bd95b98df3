"""Process lifecycle: SIGTERM/SIGINT become a stop event, HTTP sites live until it is set, and the
event loop is uvloop where available."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)


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


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port; the caller cleans the returned runner up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def run(coroutine: Awaitable[int]) -> int:
    """Run the command's coroutine on uvloop when installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    return uvloop.run(coroutine)  # type: ignore[arg-type]
