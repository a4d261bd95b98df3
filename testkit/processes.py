"""The `conekta-ingest` command as a real process, for tests that kill or signal it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.settings import Settings


def worker_env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "AMQP_URL": settings.amqp_url,
        "CONEKTA_INGEST_WORKER_METRICS_PORT": str(settings.worker_metrics_port),
        "CONEKTA_INGEST_BATCH_SIZE": "64",
        "CONEKTA_INGEST_LOG_LEVEL": "warning",
        "CONEKTA_API_URL": settings.conekta_api_url,
    }
    if settings.conekta_api_key:
        env["CONEKTA_API_KEY"] = settings.conekta_api_key
    if settings.webhook_keys:  # the worker verifies every body: it needs Conekta's keys
        env["CONEKTA_WEBHOOK_KEYS"] = ",".join(str(p) for p in settings.webhook_keys)
    if settings.verify_only_keys:
        env["CONEKTA_WEBHOOK_VERIFY_ONLY_KEYS"] = ",".join(map(str, settings.verify_only_keys))
    if settings.export_key:
        env["CONEKTA_EXPORT_KEY"] = settings.export_key
    if settings.fulfillment_subscribers:
        env["CONEKTA_FULFILLMENT_SUBSCRIBERS"] = ",".join(settings.fulfillment_subscribers)
    return env


@asynccontextmanager
async def worker_process(
    settings: Settings, stderr: int = asyncio.subprocess.DEVNULL
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`conekta-ingest work` until the block ends (killed if still running); `stderr=PIPE` keeps
    its log for a failing test to show."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "work",
        env=worker_env(settings),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    """Runs `conekta-ingest ARGS`: (exit code, stdout), and stderr too when it failed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        *args,
        env=worker_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    text = out.decode() if process.returncode == 0 else out.decode() + err.decode()
    return process.returncode, text
