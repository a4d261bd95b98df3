"""The admin JSON API under /api/v1, described by console/openapi.py (served at
/api/openapi.json). Each handler parses the request and calls the worker's action; the pages
(console/pages.py) and the CLI call the same actions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web

from console.auth import require_operator, user_of
from console.openapi import document
from console.state import (
    SETTINGS,
    STORE,
    VERIFIER,
    publisher,
    queue_depths,
)
from core import topology
from core.errors import BadRequest
from core.settings import MODES
from ops import (
    actions,
    audit,
    dead_letters,
    events,
    explore,
    in_flight,
    invalid,
    ledger,
    paging,
    replayed,
)


def query_text(request: web.Request, name: str, max_length: int = 200) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > max_length:
        raise BadRequest(f"{name} is longer than {max_length} characters")
    return value or None


def query_time(request: web.Request, name: str) -> datetime | None:
    """A time of the query; a bare date (or no offset) in the ledger's zone, CONEKTA_LEDGER_TZ."""
    value = query_text(request, name)
    return named_time(name, value, request.app[SETTINGS].ledger_tz) if value else None


def named_time(name: str, value: str, tz: ZoneInfo) -> datetime:
    """A time the caller sent as `name` (a bare date in the ledger's zone); a 400 that names
    the field when it is not one."""
    try:
        return explore.parse_time(value, tz)
    except BadRequest as exc:
        raise BadRequest(f"{name}: {exc}") from None


def query_mode(request: web.Request) -> bool | None:
    """?mode=live|test as a livemode (None: not given)."""
    value = query_text(request, "mode")
    if value is not None and value not in MODES:
        raise BadRequest("mode must be live or test")
    return MODES[value] if value else None


def query_int(request: web.Request, name: str, default: int) -> int:
    value = query_text(request, name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 9:  # "²".isdigit() is True
        raise BadRequest(f"{name} must be a whole number")
    return int(value)


def event_filter(request: web.Request) -> explore.EventFilter:
    return explore.EventFilter(
        event_id=query_text(request, "event_id"),
        order_id=query_text(request, "order_id"),
        customer=query_text(request, "customer"),
        event_type=query_text(request, "type"),
        outcome=query_text(request, "outcome"),
        since=query_time(request, "since"),
        until=query_time(request, "until"),
    )


def entry_filter(request: web.Request) -> ledger.EntryFilter:
    return ledger.EntryFilter(
        account=query_text(request, "account"),
        currency=query_text(request, "currency"),
        since=query_time(request, "since"),
        until=query_time(request, "until"),
        livemode=query_mode(request),
    )


def dead_letter_filter(request: web.Request) -> actions.Selection:
    """The dead-letter listing's filters from the query (pages and API)."""
    return actions.Selection(
        event_type=query_text(request, "type"),
        kind=query_text(request, "kind"),
        order_id=query_text(request, "order_id"),
    )


def invalid_filter(request: web.Request) -> actions.Selection:
    """The invalid-event listing's filters from the query (pages and API)."""
    return actions.Selection(
        event_type=query_text(request, "type"),
        since=query_time(request, "since"),
        until=query_time(request, "until"),
    )


def dlq_selection(body: dict[str, Any]) -> actions.Selection:
    ids = body.get("ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("ids must be a list of event ids")
    texts = {k: body.get(k) for k in ("type", "kind", "order_id")}
    if any(v is not None and not isinstance(v, str) for v in texts.values()):
        raise BadRequest("type, kind and order_id are strings")
    selection = actions.Selection(
        ids=tuple(ids),
        event_type=texts["type"] or None,
        kind=texts["kind"] or None,
        order_id=texts["order_id"] or None,
        everything=body.get("all") is True,
    )
    selection.check(dead_letters.FILTERS)  # before anything is opened or done
    return selection


async def json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if b"\\u0000" in raw or b"\x00" in raw:
        raise BadRequest("text may not contain NUL characters")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


async def me(request: web.Request) -> web.Response:
    user = user_of(request)
    return web.json_response({"name": user.name, "role": user.role.value})


async def overview(request: web.Request) -> web.Response:
    depths = await queue_depths(request.app)
    result = await explore.overview(request.app[STORE], depths, datetime.now(UTC))
    return web.json_response(result)


async def list_events(request: web.Request) -> web.Response:
    page = await explore.search_events(
        request.app[STORE],
        event_filter(request),
        query_text(request, "cursor", 500),
        query_int(request, "limit", 50),
    )
    return web.json_response(page)


async def event(request: web.Request) -> web.Response:
    found = await explore.event_detail(request.app[STORE], request.match_info["event_id"])
    if found is None:
        raise web.HTTPNotFound(text=await not_seen(request.app))
    return web.json_response(found)


async def not_seen(app: web.Application) -> str:
    """What an id the worker has not seen may be: still waiting in conekta.orders."""
    depth = (await queue_depths(app)).get(topology.ORDERS_QUEUE)
    return str(in_flight.not_seen_view(depth)["summary"])


async def replay_events(request: web.Request) -> web.Response:
    user = require_operator(request)
    body = await json_body(request)
    tz = request.app[SETTINGS].ledger_tz
    since, until = body_time(body, "since", tz), body_time(body, "until", tz)
    event_type, order_id = body_text(body, "type"), body_text(body, "order_id")
    store, modes = request.app[STORE], request.app[SETTINGS].accept_modes
    if body.get("outcome") == "invalid":  # judged again (after a schema or code fix)
        if order_id:
            raise BadRequest("invalid events are selected by type, since and until")
        selection = actions.Selection.window(since, until, event_type)
        result = await invalid.replay(
            store, selection, user.actor, modes=modes, verifier=request.app[VERIFIER]
        )
        return web.json_response({"replayed": result.done_count, "outcomes": dict(result.totals)})
    totals = await events.replay(
        store,
        events.ReplayFilter(since, until, event_type, order_id),
        user.actor,
        lambda _: None,
        modes,
        verifier=request.app[VERIFIER],
    )
    return web.json_response({"replayed": sum(totals.values()), "outcomes": dict(totals)})


def body_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value or None


def body_time(body: dict[str, Any], name: str, tz: ZoneInfo) -> datetime | None:
    value = body_text(body, name)
    return named_time(name, value, tz) if value else None


async def orders(request: web.Request) -> web.Response:
    page = await explore.search_orders(
        request.app[STORE],
        status=query_text(request, "status"),
        customer=query_text(request, "customer"),
        cursor=query_text(request, "cursor", 500),
        limit=query_int(request, "limit", 50),
    )
    return web.json_response(page)


async def order(request: web.Request) -> web.Response:
    found = await explore.order_detail(
        request.app[STORE], request.match_info["order_id"], query_mode(request)
    )
    if found is None:
        raise web.HTTPNotFound(text="no order with that id")
    return web.json_response(found)


async def balances(request: web.Request) -> web.Response:
    as_of = query_time(request, "as_of")
    rows = await ledger.balances(request.app[STORE], at=as_of)
    return web.json_response({"as_of": as_of.isoformat() if as_of else None, "balances": rows})


async def entries(request: web.Request) -> web.Response:
    page = await ledger.entries_page(
        request.app[STORE],
        entry_filter(request),
        query_text(request, "cursor", 500),
        query_int(request, "limit", 100),
    )
    return web.json_response(page)


async def entries_csv(request: web.Request) -> web.StreamResponse:
    selection = entry_filter(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="ledger-entries.csv"',
        }
    )
    await response.prepare(request)
    async for chunk in ledger.entries_csv(request.app[STORE], selection):
        await response.write(chunk.encode())
    await response.write_eof()
    return response


async def verify(request: web.Request) -> web.Response:
    results = await ledger.verify(request.app[STORE])
    return web.json_response(
        {
            "ok": not any(rows for _, rows in results),
            "checks": [
                {"check": c.description, "ok": not rows, "violations": rows[:100]}
                for c, rows in results
            ],
        },
        dumps=_dumps,
    )


def _dumps(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


async def list_dead_letters(request: web.Request) -> web.Response:
    rows = await dead_letters.list_letters(request.app[STORE], dead_letter_filter(request))
    return web.json_response({"items": rows})


async def dead_letter(request: web.Request) -> web.Response:
    found = await dead_letters.show(request.app[STORE], request.match_info["id"])
    if not found:
        raise web.HTTPNotFound(text="no dead letter with that id")
    return web.json_response(found[0], dumps=_dumps)


async def replay_dead_letters(request: web.Request) -> web.Response:
    user = require_operator(request)
    body = await json_body(request)
    selection, store = dlq_selection(body), request.app[STORE]
    if body.get("dry_run") is True:
        return web.json_response((await dead_letters.preview(store, "replay", selection)).summary())
    wait = _wait_seconds(body)
    result = await dead_letters.replay(
        store,
        await publisher(request.app),
        selection,
        user.actor,
        reason=body_text(body, "reason") or "",
    )
    outcomes = await replayed.wait(store, result.done, wait) if wait else replayed.Outcomes()
    return web.json_response({**result.summary(), **outcomes.summary()})


def _wait_seconds(body: dict[str, Any]) -> float:
    """How long a replay waits for what came of it: "wait" seconds (default 30), 0 or false
    for not at all."""
    value = body.get("wait", replayed.DEFAULT_WAIT)
    if value is False:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("wait is a number of seconds (or false)")
    if not 0 <= value <= replayed.MAX_WAIT:
        raise BadRequest(f"wait is between 0 and {replayed.MAX_WAIT:.0f} seconds")
    return float(value)


async def purge_dead_letters(request: web.Request) -> web.Response:
    """A purge must say why, and confirm the count it saw in the dry run ("purge N")."""
    user = require_operator(request)
    body = await json_body(request)
    selection, store = dlq_selection(body), request.app[STORE]
    preview = await dead_letters.preview(store, "purge", selection)
    if body.get("dry_run") is True:
        return web.json_response(preview.summary())
    expected = f"purge {len(preview.matched)}"
    if body_text(body, "confirm") != expected:
        raise BadRequest(f'type the confirmation "{expected}" (the number matched now)')
    result = await dead_letters.purge(
        store, selection, user.actor, reason=body_text(body, "reason") or ""
    )
    return web.json_response(result.summary())


def invalid_selection(body: dict[str, Any], tz: ZoneInfo) -> actions.Selection:
    ids = body.get("ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("ids must be a list of event ids")
    selection = actions.Selection(
        ids=tuple(ids),
        event_type=body_text(body, "type"),
        since=body_time(body, "since", tz),
        until=body_time(body, "until", tz),
        everything=body.get("all") is True,
    )
    selection.check(invalid.FILTERS)  # before anything is opened or done
    return selection


async def invalid_events(request: web.Request) -> web.Response:
    page = await invalid.listing(
        request.app[STORE],
        invalid_filter(request),
        query_text(request, "cursor", 500),
        query_int(request, "limit", 100),
    )
    return web.json_response(page)


async def replay_invalid_events(request: web.Request) -> web.Response:
    user = require_operator(request)
    body = await json_body(request)
    selection, store = invalid_selection(body, request.app[SETTINGS].ledger_tz), request.app[STORE]
    modes = request.app[SETTINGS].accept_modes
    if body.get("dry_run") is True:
        result = await invalid.preview(
            store, "replay", selection, modes, verifier=request.app[VERIFIER]
        )
    else:
        reason = body_text(body, "reason") or ""
        result = await invalid.replay(
            store,
            selection,
            user.actor,
            reason=reason,
            modes=modes,
            verifier=request.app[VERIFIER],
        )
    return web.json_response(result.summary())


async def purge_invalid_events(request: web.Request) -> web.Response:
    """A purge must say why, and confirm the count it saw in the dry run ("purge N")."""
    user = require_operator(request)
    body = await json_body(request)
    selection, store = invalid_selection(body, request.app[SETTINGS].ledger_tz), request.app[STORE]
    if body.get("dry_run") is True:
        preview = await invalid.preview(
            store, "purge", selection, request.app[SETTINGS].accept_modes
        )
        return web.json_response(preview.summary())
    matched = await invalid.count(store, selection)
    expected = f"purge {matched}"
    if body_text(body, "confirm") != expected:
        raise BadRequest(f'type the confirmation "{expected}" (the number matched now)')
    result = await invalid.purge(
        store, selection, user.actor, reason=body_text(body, "reason") or "", expect=matched
    )
    return web.json_response(result.summary())


async def audit_log(request: web.Request) -> web.Response:
    items = await audit.page(
        request.app[STORE],
        before_id=query_int(request, "before_id", 0),
        actor=query_text(request, "actor"),
        action=query_text(request, "action"),
        limit=paging.page_size(query_int(request, "limit", audit.PAGE)),
    )
    return web.json_response(
        {"items": items, "next": str(items[-1]["id"]) if len(items) == audit.PAGE else None}
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/openapi.json", openapi)
    r.add_get("/api/v1/me", me)
    r.add_get("/api/v1/overview", overview)
    r.add_get("/api/v1/events", list_events)
    r.add_post("/api/v1/events/replay", replay_events)
    r.add_get("/api/v1/events/{event_id}", event)
    r.add_get("/api/v1/orders", orders)
    r.add_get("/api/v1/orders/{order_id}", order)
    r.add_get("/api/v1/ledger/balances", balances)
    r.add_get("/api/v1/ledger/entries", entries)
    r.add_get("/api/v1/ledger/entries.csv", entries_csv)
    r.add_get("/api/v1/ledger/verify", verify)
    r.add_get("/api/v1/dead-letters", list_dead_letters)
    r.add_post("/api/v1/dead-letters/replay", replay_dead_letters)
    r.add_post("/api/v1/dead-letters/purge", purge_dead_letters)
    r.add_get("/api/v1/dead-letters/{id}", dead_letter)
    r.add_get("/api/v1/invalid-events", invalid_events)
    r.add_post("/api/v1/invalid-events/replay", replay_invalid_events)
    r.add_post("/api/v1/invalid-events/purge", purge_invalid_events)
    r.add_get("/api/v1/audit", audit_log)
