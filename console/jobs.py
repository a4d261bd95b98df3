"""Long actions started from a page (replay or purge of many dead letters) run as tasks; the
page that started them follows their progress. Only their bookkeeping lives here, in memory: the
action itself, and its audit entry, are the worker's."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)
KEEP = 100  # finished jobs remembered per process


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

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


JOBS = web.AppKey("jobs", dict[str, Job])
TASKS = web.AppKey("job_tasks", set[asyncio.Task[None]])

Work = Callable[[Job], Awaitable[dict[str, Any]]]


def start(app: web.Application, title: str, actor: str, work: Work) -> Job:
    jobs = app[JOBS]
    for old in [j for j in jobs.values() if j.state != "running"][:-KEEP]:
        del jobs[old.id]
    job = Job(secrets.token_urlsafe(8), title, actor)
    jobs[job.id] = job

    async def run() -> None:
        try:
            job.result = await work(job)
            job.state = "finished"
        except Exception as exc:
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("console job failed", job=job.id, title=title)

    task = asyncio.create_task(run(), name=f"console-job-{job.id}")
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)
    return job


async def lifecycle(app: web.Application) -> Any:
    """cleanup_ctx: jobs still running at shutdown are awaited (they hold unacked letters)."""
    app[JOBS] = {}
    app[TASKS] = set()
    yield
    if app[TASKS]:
        await asyncio.gather(*app[TASKS], return_exceptions=True)
