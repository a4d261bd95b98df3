"""Long actions started from a page (replay or purge of many dead letters or invalid events) run
as tasks; the page that started them follows their progress. Only their bookkeeping lives here,
in memory: the action itself, and its audit entry, are the worker's.

A job is not restarted on failure (the person who started it decides, after reading the error;
its transaction rolled back, so nothing was half done): it is logged and counted
(`conekta_console_jobs_total{action,state}`), and those running are a gauge."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import Counter, Gauge

log = structlog.get_logger(__name__)
KEEP = 100  # finished jobs remembered per process

JOBS_TOTAL = Counter(
    "conekta_console_jobs_total",
    "Console jobs that ended, by action and state.",
    ["action", "state"],
)
JOBS_RUNNING = Gauge("conekta_console_jobs_running", "Console jobs running now.")


@dataclass
class Job:
    id: str
    title: str
    actor: str
    done: int = 0
    total: int = 0
    state: str = "running"  # running | finished | failed
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    stage: str = ""  # what it is doing now, when more than counting (e.g. waiting for the worker)
    back: tuple[str, str] = ("/dead-letters", "Dead letters")  # the page it was started from

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


JOBS = web.AppKey("jobs", dict[str, Job])
TASKS = web.AppKey("job_tasks", set[asyncio.Task[None]])

Work = Callable[[Job], Awaitable[dict[str, Any]]]


def start(
    app: web.Application,
    action: str,
    title: str,
    actor: str,
    work: Work,
    back: tuple[str, str] = ("/dead-letters", "Dead letters"),
) -> Job:
    jobs = app[JOBS]
    for old in [j for j in jobs.values() if j.state != "running"][:-KEEP]:
        del jobs[old.id]
    job = Job(secrets.token_urlsafe(8), title, actor, back=back)
    jobs[job.id] = job

    async def run() -> None:
        log.info("console job started", job=job.id, title=title, actor=actor)
        JOBS_RUNNING.inc()
        try:
            job.result = await work(job)
            job.state = "finished"
            log.info("console job finished", job=job.id, title=title, done=job.done)
        except Exception as exc:
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("console job failed", job=job.id, title=title)
        finally:
            JOBS_RUNNING.dec()
            JOBS_TOTAL.labels(action, job.state).inc()

    task = asyncio.create_task(run(), name=f"console-job-{job.id}")
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)
    return job


async def lifecycle(app: web.Application) -> Any:
    """cleanup_ctx: jobs still running at shutdown are awaited (their transaction holds the
    dead letters they settle)."""
    app[JOBS] = {}
    app[TASKS] = set()
    yield
    if app[TASKS]:
        await asyncio.gather(*app[TASKS], return_exceptions=True)
