"""The server-rendered pages: each parses its form or query, calls the same worker action as
the API (console/api.py), and renders a template. No JavaScript is needed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import jinja2
import orjson
from aiohttp import web

from console import api, jobs, users
from console.auth import (
    COOKIE,
    LOGIN_COOKIE,
    check_login_form,
    csrf_of,
    login_form_token,
    remote_of,
    require_operator,
    set_cookie,
)
from console.state import (
    SETTINGS,
    STORE,
    VERIFIER,
    publisher,
    queue_depths,
    subscriber_states,
)
from core.settings import DEFAULT_LEDGER_TZ
from domain.outcome import Outcome
from ops import actions, audit, dead_letters, explore, invalid, ledger, replayed

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
TEMPLATES.filters["pretty"] = lambda v: orjson.dumps(v, option=orjson.OPT_INDENT_2).decode()


def money(cents: int, currency: str) -> str:
    """Integer cents as the amount with its unit: 20000, "MXN" -> "200.00 MXN" (exact: no float)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d} {currency}"


@jinja2.pass_context
def when(context: Any, value: str | datetime | None) -> str:
    """A time in the ledger's zone (CONEKTA_LEDGER_TZ), to the second, with the zone's name."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    local = moment.astimezone(context["ledger_zone"])
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "")


def readable(details: object) -> list[tuple[str, str]]:
    """An audit entry's details as lines of "name: value" (target and reason have their own
    columns); lists shown as their first 20 items, objects as the fields that were set."""
    if not isinstance(details, dict):
        return [("details", str(details))] if details else []
    lines = []
    for name, value in details.items():
        if name in {"target", "reason"} or value in (None, "", [], {}):
            continue
        if isinstance(value, list):
            more = f" … and {len(value) - 20} more" if len(value) > 20 else ""
            text = ", ".join(str(v) for v in value[:20]) + more
        elif isinstance(value, dict):
            text = ", ".join(
                f"{k}={' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in value.items()
                if v not in (None, "", [], False)
            )
        else:
            text = str(value)
        lines.append((name.replace("_", " "), text or "none"))
    return lines


TEMPLATES.filters["money"] = money
TEMPLATES.filters["readable"] = readable
TEMPLATES.filters["when"] = when


def _zone(request: web.Request) -> ZoneInfo:
    """The ledger's zone; the default where there are no settings (an error page's app)."""
    settings = request.app.get(SETTINGS)
    return settings.ledger_tz if settings else ZoneInfo(DEFAULT_LEDGER_TZ)


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    user = request.get("user")
    html = TEMPLATES.get_template(name).render(
        user=user,
        csrf_token=csrf_of(request),
        path=request.path,
        ledger_zone=_zone(request),
        **context,
    )
    return web.Response(text=html, content_type="text/html", status=status)


# -- logging in ---------------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, "")


def _login_form(request: web.Request, error: str, status: int = 200) -> web.Response:
    token = login_form_token(request)
    response = render(
        request,
        "login.html",
        status=status,
        error=error,
        login_token=token,
        next=_safe_next(request.query.get("next", "/")),
    )
    set_cookie(response, request, LOGIN_COOKIE, token)
    return response


MAX_NEXT = 2000


def _safe_next(target: str) -> str:
    """Only a path on this console: no open redirect after login. Browsers drop tabs and newlines
    from a URL and read a backslash as a slash, so `/%09/evil.example` and `/\\evil` would become
    `//evil.example`: only printable ASCII without spaces or backslashes is taken, it must start
    with one `/` and name no scheme or host; anything else goes to the overview."""
    printable = all("!" <= c <= "~" for c in target) and "\\" not in target
    if not (printable and 0 < len(target) <= MAX_NEXT and target.startswith("/")):
        return "/"
    if target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return target if not (parts.scheme or parts.netloc) else "/"


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    if not check_login_form(request, str(form.get("csrf_token", ""))):
        return _login_form(request, "The form expired: try again.", 403)
    store = request.app[STORE]
    name, password = str(form.get("user", "")), str(form.get("password", ""))
    if "\x00" in name or len(name) > 64:
        return _login_form(request, "Wrong user name or password.", 401)
    try:
        user = await users.authenticate(store, name, password, remote_of(request))
    except users.TooManyFailures as exc:
        return _login_form(request, str(exc), 429)
    if user is None:
        return _login_form(request, "Wrong user name or password.", 401)
    session = await users.open_session(store, user)
    response = web.HTTPSeeOther(_safe_next(str(form.get("next", "/"))))
    set_cookie(response, request, COOKIE, session.token)
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.Response:
    await users.close_session(request.app[STORE], request.cookies.get(COOKIE, ""))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# -- reading ------------------------------------------------------------------------------------


async def overview(request: web.Request) -> web.Response:
    depths = await queue_depths(request.app)
    data = await explore.overview(request.app[STORE], depths, datetime.now(UTC))
    subscribers = await subscriber_states(request.app)
    return render(
        request, "overview.html", data=data, outcomes=list(Outcome), subscribers=subscribers
    )


async def list_events(request: web.Request) -> web.Response:
    selection = api.event_filter(request)
    page = await explore.search_events(
        request.app[STORE], selection, api.query_text(request, "cursor", 500), 50
    )
    more = _with(request, cursor=page["next"]) if page["next"] else None
    return render(
        request, "events.html", page=page, q=request.query, more=more, outcomes=list(Outcome)
    )


async def event(request: web.Request) -> web.Response:
    found = await explore.event_detail(request.app[STORE], request.match_info["event_id"])
    if found is None:
        raise web.HTTPNotFound(text=await api.not_seen(request.app))
    if found["state"] != "archived":
        return render(request, "event_in_flight.html", event=found)
    return render(request, "event.html", event=found)


async def orders(request: web.Request) -> web.Response:
    page = await explore.search_orders(
        request.app[STORE],
        status=api.query_text(request, "status"),
        customer=api.query_text(request, "customer"),
        cursor=api.query_text(request, "cursor", 500),
    )
    more = _with(request, cursor=page["next"]) if page["next"] else None
    return render(request, "orders.html", page=page, q=request.query, more=more)


async def order(request: web.Request) -> web.Response:
    found = await explore.order_detail(
        request.app[STORE], request.match_info["order_id"], api.query_mode(request)
    )
    if found is None:
        raise web.HTTPNotFound(text="no order with that id")
    return render(request, "order.html", order=found)


async def ledger_page(request: web.Request) -> web.Response:
    as_of = api.query_time(request, "as_of")
    store = request.app[STORE]
    balances = await ledger.balances(store, at=as_of)
    selection = api.entry_filter(request)
    if as_of is not None and selection.until is None:
        # The entries behind those balances: money that had moved by then (effective_at <=
        # as_of, where `until` is exclusive).
        selection = replace(selection, until=as_of + timedelta(microseconds=1))
    page = await ledger.entries_page(store, selection, api.query_text(request, "cursor", 500), 100)
    more = _with(request, cursor=page["next"]) if page["next"] else None
    query = {
        k: v
        for k, v in request.query.items()
        if k in {"account", "currency", "since", "until", "mode"}
    }
    if selection.until is not None:
        query["until"] = selection.until.isoformat()
    csv = "/api/v1/ledger/entries.csv?" + urlencode(query)
    return render(
        request,
        "ledger.html",
        balances=balances,
        page=page,
        q=request.query,
        more=more,
        csv=csv,
        ledger_tz=request.app[SETTINGS].ledger_tz.key,
        entries_until=selection.until,
    )


async def audit_page(request: web.Request) -> web.Response:
    before = api.query_int(request, "before_id", 0)
    items = await audit.page(
        request.app[STORE],
        before_id=before,
        actor=api.query_text(request, "actor"),
        action=api.query_text(request, "action"),
    )
    more = _with(request, before_id=items[-1]["id"]) if len(items) == audit.PAGE else None
    return render(request, "audit.html", items=items, q=request.query, more=more)


def _with(request: web.Request, **changes: object) -> str:
    query = {**request.query, **{k: str(v) for k, v in changes.items()}}
    return f"{request.path}?{urlencode(query)}"


# -- dead letters -------------------------------------------------------------------------------


async def list_dead_letters(request: web.Request) -> web.Response:
    rows = await dead_letters.list_letters(request.app[STORE], api.dead_letter_filter(request))
    return render(request, "dead_letters.html", letters=rows, q=request.query)


async def dead_letter(request: web.Request) -> web.Response:
    store = request.app[STORE]
    found = await dead_letters.show(store, request.match_info["id"])
    if not found:
        raise web.HTTPNotFound(text="no dead letter with that id")
    letter = found[0]
    # Its order may be unknown to the ledger (the event that would have created it is this one).
    known = bool(letter["order_id"]) and await store.orders.get(letter["order_id"]) is not None
    return render(request, "dead_letter.html", letter=letter, order_known=known)


def _form_selection(form: Any) -> actions.Selection:
    return api.dlq_selection(
        {
            "ids": [str(i) for i in form.getall("id", [])],
            "type": str(form.get("type", "")) or None,
            "kind": str(form.get("kind", "")) or None,
            "order_id": str(form.get("order_id", "")) or None,
            "all": form.get("all") == "yes",
        }
    )


async def act_on_dead_letters(request: web.Request) -> web.Response:
    """POST /dead-letters/{action}: first a dry-run preview, then (step=run) the job."""
    user = require_operator(request)
    action = request.match_info["action"]
    form = await request.post()
    selection = _form_selection(form)
    store = request.app[STORE]
    preview = await dead_letters.preview(store, action, selection)
    if form.get("step") != "run":
        return render(
            request, "dlq_preview.html", action=action, preview=preview, form=form, error=""
        )
    reason = str(form.get("reason", "")).strip()
    if action == "purge":
        expected = f"purge {preview.matched_count}"
        if str(form.get("confirm", "")).strip() != expected or not reason:
            error = f'Type "{expected}" and give a reason to purge.'
            return render(
                request, "dlq_preview.html", action=action, preview=preview, form=form, error=error
            )
    replay_publisher = await publisher(request.app) if action == "replay" else None

    async def work(job: jobs.Job) -> dict[str, Any]:
        if replay_publisher is None:
            result = await dead_letters.purge(
                store, selection, user.actor, reason=reason, progress=job.progress
            )
            return result.summary()
        result = await dead_letters.replay(
            store,
            replay_publisher,
            selection,
            user.actor,
            reason=reason,
            progress=job.progress,
        )
        job.stage = f"replayed; waiting up to {replayed.DEFAULT_WAIT:.0f} s for the worker"
        outcomes = await replayed.wait(store, result.done)
        job.stage = ""
        return {**result.summary(), **outcomes.summary()}

    job = jobs.start(
        request.app, action, f"{action} {preview.matched_count} dead letter(s)", user.actor, work
    )
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


# -- invalid events -----------------------------------------------------------------------------

INVALID_BACK = ("/invalid-events", "Invalid events")


async def invalid_events(request: web.Request) -> web.Response:
    page = await invalid.listing(
        request.app[STORE], api.invalid_filter(request), api.query_text(request, "cursor", 500), 100
    )
    more = _with(request, cursor=page["next"]) if page["next"] else None
    filtered = any(request.query.get(k) for k in ("type", "since", "until"))
    return render(
        request, "invalid_events.html", page=page, q=request.query, more=more, filtered=filtered
    )


def _invalid_form_selection(form: Any, tz: ZoneInfo) -> actions.Selection:
    return api.invalid_selection(
        {
            "ids": [str(i) for i in form.getall("id", [])],
            **{k: str(form.get(k, "")) or None for k in ("type", "since", "until")},
            "all": form.get("all") == "yes",
        },
        tz,
    )


async def act_on_invalid_events(request: web.Request) -> web.Response:
    """POST /invalid-events/{action}: first a dry-run preview (each body judged again in
    memory), then (step=run) the job."""
    user = require_operator(request)
    action = request.match_info["action"]
    form = await request.post()
    selection = _invalid_form_selection(form, request.app[SETTINGS].ledger_tz)
    store, modes = request.app[STORE], request.app[SETTINGS].accept_modes
    if form.get("step") != "run":
        return await _invalid_preview(request, action, selection, form, "")
    reason = str(form.get("reason", "")).strip()
    matched = await invalid.count(store, selection)
    if action == "purge":
        expected = f"purge {matched}"
        if str(form.get("confirm", "")).strip() != expected or not reason:
            error = f'Type "{expected}" and give a reason to purge.'
            return await _invalid_preview(request, action, selection, form, error)

    async def work(job: jobs.Job) -> dict[str, Any]:
        if action == "purge":
            result = await invalid.purge(
                store, selection, user.actor, reason=reason, expect=matched, progress=job.progress
            )
        else:
            result = await invalid.replay(
                store,
                selection,
                user.actor,
                reason=reason,
                progress=job.progress,
                modes=modes,
                verifier=request.app[VERIFIER],
            )
        return result.summary()

    title = f"{action} {matched} invalid event(s)"
    job = jobs.start(request.app, f"{action}_invalid", title, user.actor, work, INVALID_BACK)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


async def _invalid_preview(
    request: web.Request, action: str, selection: actions.Selection, form: Any, error: str
) -> web.Response:
    modes = request.app[SETTINGS].accept_modes
    verifier = request.app[VERIFIER] if action == "replay" else None
    preview = await invalid.preview(request.app[STORE], action, selection, modes, verifier)
    return render(
        request,
        "invalid_preview.html",
        action=action,
        preview=preview,
        form=form,
        error=error,
    )


async def job_page(request: web.Request) -> web.Response:
    job = request.app[jobs.JOBS].get(request.match_info["id"])
    if job is None:
        raise web.HTTPNotFound(text="no such job (the console restarted?): see the audit log")
    return render(request, "job.html", job=job)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/", overview)
    r.add_get("/events", list_events)
    r.add_get("/events/{event_id}", event)
    r.add_get("/orders", orders)
    r.add_get("/orders/{order_id}", order)
    r.add_get("/ledger", ledger_page)
    r.add_get("/dead-letters", list_dead_letters)
    r.add_post("/dead-letters/{action:replay|purge}", act_on_dead_letters)
    r.add_get("/dead-letters/{id}", dead_letter)
    r.add_get("/invalid-events", invalid_events)
    r.add_post("/invalid-events/{action:replay|purge}", act_on_invalid_events)
    r.add_get("/jobs/{id}", job_page)
    r.add_get("/audit", audit_page)
