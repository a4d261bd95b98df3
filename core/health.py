"""/healthz, /readyz and /metrics: one small HTTP surface, the same for the receiver and worker.

/healthz answers while the process runs; /readyz answers 200 only when every named check passes
(else 503 with each check's result), so an orchestrator stops sending work to a process that
cannot do it; /metrics is Prometheus' text format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Checks = Mapping[str, Callable[[], bool]]
Notes = Callable[[], Mapping[str, str]]


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics_view(_: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def add_routes(app: web.Application, checks: Checks, notes: Notes = dict) -> None:
    """Add the three routes to `app`; `notes` adds fields to /readyz (warnings, say)."""

    async def readyz(_: web.Request) -> web.Response:
        results = {name: check() for name, check in checks.items()}
        ready = all(results.values())
        body: dict[str, object] = {"status": "ok" if ready else "unavailable", **results}
        body.update(notes())
        return web.json_response(body, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)


def create_app(checks: Checks) -> web.Application:
    """An app with only the three routes (the worker's metrics port)."""
    app = web.Application()
    add_routes(app, checks)
    return app
