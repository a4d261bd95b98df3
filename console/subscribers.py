"""The fulfillment subscribers in the console, as a page and in the API: each configured
subscriber's queue (depth, consumers, dead letters) and a replay of outbox messages to one
subscriber's queue (a dry run, then a job)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from console import api, jobs
from console.auth import require_operator
from console.pages import render
from console.state import SETTINGS, STORE, broker_connection, publisher, subscriber_states
from core import topology
from core.errors import BadRequest, PublishFailed
from ops import fulfillment

FULFILLMENT_BACK = ("/fulfillment", "Fulfillment")


async def fulfillment_page(request: web.Request) -> web.Response:
    states = await subscriber_states(request.app)
    names = request.app[SETTINGS].fulfillment_subscribers
    return render(
        request,
        "fulfillment.html",
        subscribers=states or [],
        unknown=states is None,
        queues=[topology.subscriber_queue(n) for n in names],
        event_types=topology.ORDER_EVENT_TYPES,
    )


async def replay_fulfillment(request: web.Request) -> web.Response:
    """POST /fulfillment/replay: first a dry run (the count per type), then (step=run) the job."""
    user = require_operator(request)
    form = await request.post()
    selection = fulfillment_selection(
        {k: str(form.get(k, "")) or None for k in ("queue", "since", "until", "type", "order_id")},
        request.app[SETTINGS].ledger_tz,
    )
    store, subscribers = request.app[STORE], request.app[SETTINGS].fulfillment_subscribers
    preview = await fulfillment.preview(store, selection, subscribers)
    if form.get("step") != "run":
        return render(request, "fulfillment_preview.html", preview=preview, form=form, error="")
    reason = str(form.get("reason", "")).strip()
    replay_publisher = await publisher(request.app)
    connection = await broker_connection(request.app)

    async def work(job: jobs.Job) -> dict[str, Any]:
        result = await fulfillment.replay(
            store,
            replay_publisher,
            connection,
            selection,
            subscribers,
            user.actor,
            reason=reason,
            progress=job.progress,
        )
        return result.summary()

    title = f"replay {preview.matched} fulfillment message(s) to {selection.queue}"
    job = jobs.start(request.app, "fulfillment_replay", title, user.actor, work, FULFILLMENT_BACK)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


async def api_subscribers(request: web.Request) -> web.Response:
    states = await subscriber_states(request.app)
    if states is None:
        raise web.HTTPServiceUnavailable(text="RabbitMQ is unreachable; try again shortly")
    return web.json_response({"items": states})


def fulfillment_selection(body: dict[str, Any], tz: ZoneInfo) -> fulfillment.Selection:
    queue = api.body_text(body, "queue")
    if not queue:
        raise BadRequest("queue is required: conekta.fulfillment.<name> of a configured subscriber")
    return fulfillment.Selection(
        queue,
        api.body_time(body, "since", tz),
        api.body_time(body, "until", tz),
        api.body_text(body, "type"),
        api.body_text(body, "order_id"),
    )


async def api_replay(request: web.Request) -> web.Response:
    """To one configured subscriber's queue only (ops.fulfillment); dry_run counts."""
    user = require_operator(request)
    body = await api.json_body(request)
    settings, store = request.app[SETTINGS], request.app[STORE]
    selection = fulfillment_selection(body, settings.ledger_tz)
    subscribers = settings.fulfillment_subscribers
    if body.get("dry_run") is True:
        result = await fulfillment.preview(store, selection, subscribers)
        return web.json_response(result.summary())
    selection.check(subscribers)  # a clear 400 before the broker is asked
    try:
        result = await fulfillment.replay(
            store,
            await publisher(request.app),
            await broker_connection(request.app),
            selection,
            subscribers,
            user.actor,
            reason=api.body_text(body, "reason") or "",
        )
    except PublishFailed as exc:
        raise web.HTTPServiceUnavailable(
            text=f"replay stopped: {exc} (the audit log says how many went out)"
        ) from exc
    return web.json_response(result.summary())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/fulfillment", fulfillment_page)
    app.router.add_post("/fulfillment/replay", replay_fulfillment)
    app.router.add_get("/api/v1/fulfillment/subscribers", api_subscribers)
    app.router.add_post("/api/v1/fulfillment/replay", api_replay)
