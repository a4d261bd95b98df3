"""The console's aiohttp application: pages, the API, static files, health, and the middlewares
that turn errors into answers (JSON under /api, a page elsewhere) and add security headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import structlog
from aiohttp import web

from console import api, jobs, pages, settlement, subscribers
from console.auth import Handler, authenticate
from console.state import SETTINGS, STORE, VERIFIER
from console.state import resources as app_resources
from core import health
from core.errors import BadRequest, DatabaseUnavailable
from core.settings import Settings
from core.supervisor import Supervisor, for_settings
from core.verifier import Verifier

log = structlog.get_logger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        refuse_nul(request.path)
        for name, value in request.query.items():
            refuse_nul(value, name)
        response = await handler(request)
    except BadRequest as exc:
        response = _error(request, 400, str(exc))
    except DatabaseUnavailable:
        log.warning("console: database unavailable", path=request.path)
        response = _error(request, 503, "the database is unreachable; try again shortly")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(request, exc.status, exc.text or exc.reason, exc.headers)
    except ConnectionError:  # the client went away (mid-stream): nobody to answer
        raise
    except Exception:  # a bug: logged whole here, never shown (no traceback to the client)
        log.exception("console: unexpected error", path=request.path, method=request.method)
        response = _error(request, 500, "internal error; the console's log has the details")
    return response


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the security headers on every response, whatever made it (a page,
    an error, a streamed CSV, a static file, aiohttp's own 404/405/500)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def refuse_nul(text: str, field: str = "") -> None:
    """PostgreSQL text cannot hold NUL: refuse it here, as a 400, before anything is done."""
    if "\x00" in text:
        raise BadRequest(f"{field + ': ' if field else ''}text may not contain NUL characters")


def _error(request: web.Request, status: int, message: str, headers: object = None) -> web.Response:
    kept = {
        k: v
        for k, v in dict(headers or {}).items()  # type: ignore[call-overload]
        if k in {"WWW-Authenticate", "Retry-After"}
    }
    if request.path.startswith("/api/"):
        response = web.json_response({"error": message}, status=status, headers=kept)
    else:
        message = message.removeprefix(f"{status}: ")
        response = pages.render(request, "error.html", status=status, message=message)
        response.headers.update(kept)
    return response


PING_EVERY = 5.0  # seconds between the database checks behind /readyz
DATABASE_OK = web.AppKey("database_ok", dict[str, bool])
SUPERVISOR = web.AppKey("supervisor", Supervisor)


async def watch_database(app: web.Application) -> None:
    """Ping the database every few seconds for /readyz; a failed ping raises, so the supervisor
    logs and counts it, retries with backoff, and holds readiness down until it recovers."""
    state = app[DATABASE_OK]
    while True:
        try:
            async with asyncio.timeout(2):
                await app[STORE].ping()
        except Exception as exc:
            state["ok"] = False
            raise DatabaseUnavailable(f"console database ping failed: {exc}") from exc
        state["ok"] = True
        await asyncio.sleep(PING_EVERY)


async def supervised(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the store): the console's long-running tasks, under the supervisor."""
    app[DATABASE_OK] = {"ok": True}
    task = app[SUPERVISOR].run("console-database", lambda: watch_database(app))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def create_app(settings: Settings, supervisor: Supervisor | None = None) -> web.Application:
    """The console; its background work runs under `supervisor` (the process's, when served)."""
    app = web.Application(middlewares=[errors, authenticate], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app.on_response_prepare.append(secure_headers)
    app[VERIFIER] = Verifier.from_settings(settings)
    app[SUPERVISOR] = supervisor or for_settings(settings, asyncio.Event())
    app.cleanup_ctx.append(app_resources)
    app.cleanup_ctx.append(supervised)
    app.cleanup_ctx.append(jobs.lifecycle)
    pages.add_routes(app)
    subscribers.add_routes(app)
    settlement.add_routes(app)
    api.add_routes(app)
    static = Path(str(resources.files("console").joinpath("static")))
    app.router.add_static("/static/", static)
    health.add_routes(
        app, {"database": lambda: app[DATABASE_OK]["ok"], "tasks": app[SUPERVISOR].ready}
    )
    return app
