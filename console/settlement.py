"""Settlement in the console, as a page and in the API, for viewers too: the transfers with their
status, what a dry-run `settle match` would post and the records left unmatched or for review,
the four invariants, the last balance snapshot (ops/settlement_status.py), and a month's report
(ops/settlement_report.py, as `settle report --json`). No actions: posting stays with the on-call
CLI, `settle match --apply`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from console import api
from console.pages import render
from console.state import SETTINGS, STORE
from core.errors import BadRequest
from core.settings import zone
from domain import periods
from ops import settlement_report, settlement_status

YEARS = range(1970, 9000)  # a month whose bounds every zone can spell


def report_month(request: web.Request, tz: ZoneInfo, now: datetime) -> date:
    """?month=YYYY-MM (default: this month in `tz`)."""
    value = api.query_text(request, "month")
    if value is None:
        return periods.month_of(now, tz)
    try:
        month = periods.parse_month(value)
    except BadRequest as exc:
        raise BadRequest(f"month: {exc}") from None
    if month.year not in YEARS:
        raise BadRequest(f"month: {value!r} is out of range ({YEARS[0]} to {YEARS[-1]})")
    return month


def report_zone(request: web.Request) -> ZoneInfo:
    """?tz=Zone (default: the ledger's, CONEKTA_LEDGER_TZ)."""
    value = api.query_text(request, "tz")
    if value is None:
        return request.app[SETTINGS].ledger_tz
    try:
        return zone(value)
    except ValueError as exc:
        raise BadRequest(f"tz: {exc}") from None
    except OSError:  # e.g. "America", a folder of zones: the path is not the caller's business
        raise BadRequest(f"tz: not a time zone: {value!r} (an IANA name)") from None


async def _status(request: web.Request, now: datetime) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return await settlement_status.status(
        request.app[STORE],
        now=now,
        tax_rate=settings.fee_tax_rate,
        tz=settings.ledger_tz,
        livemode=settings.conekta_api_livemode,
    )


async def _report(request: web.Request, now: datetime) -> dict[str, Any]:
    tz = report_zone(request)
    month = report_month(request, tz, now)
    return await settlement_report.report(
        request.app[STORE],
        month,
        tz=tz,
        tax_rate=request.app[SETTINGS].fee_tax_rate,
        now=now,
    )


async def api_settlement(request: web.Request) -> web.Response:
    return web.json_response(await _status(request, datetime.now(UTC)))


async def api_report(request: web.Request) -> web.Response:
    return web.json_response(await _report(request, datetime.now(UTC)))


async def settlement_page(request: web.Request) -> web.Response:
    now = datetime.now(UTC)
    report = await _report(request, now)  # a bad month or zone: a 400 before the rest is read
    return render(
        request,
        "settlement.html",
        state=await _status(request, now),
        report=report,
        q=request.query,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/settlement", settlement_page)
    app.router.add_get("/api/v1/settlement", api_settlement)
    app.router.add_get("/api/v1/settlement/report", api_report)
