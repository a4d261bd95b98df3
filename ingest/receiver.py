"""The HTTP receiver: verify, validate, publish with confirms, and only then answer 200."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from core import broker, health, topology
from core.errors import InvalidEvent, KeyFileError, PublishFailed
from core.settings import Settings
from core.supervisor import Supervisor, for_settings
from ingest import metrics, signature
from ingest.event import PING_TYPE, parse_event

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/webhooks/conekta"
SETTINGS = web.AppKey("settings", Settings)
KEYS = web.AppKey("keys", tuple[rsa.RSAPublicKey, ...])
PUBLISHER = web.AppKey("publisher", list[broker.Publisher])  # empty until connected
SUPERVISOR = web.AppKey("supervisor", Supervisor)

UNSIGNED_WARNING = "accepting UNSIGNED webhooks: anyone can post events (never in production)"


def _error(status: int, outcome: str, message: str) -> web.Response:
    metrics.REQUESTS.labels(outcome).inc()
    return _json({"status": "error", "error": message}, status)


async def receive_webhook(request: web.Request) -> web.Response:
    metrics.IN_FLIGHT.inc()
    try:
        return await _receive(request)
    finally:
        metrics.IN_FLIGHT.dec()


async def _receive(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if request.content_type != "application/json":
        return _error(415, "unsupported_media_type", "content type must be application/json")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return _error(413, "too_large", f"body over {settings.max_body_bytes} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "too_large", f"body over {settings.max_body_bytes} bytes")
    keys = request.app[KEYS]
    if keys and not signature.verify(body, request.headers.get("Digest"), keys):
        log.warning("webhook signature rejected", remote=request.remote)
        return _error(401, "bad_signature", "missing or invalid DIGEST signature")
    try:
        event = parse_event(body)
    except InvalidEvent as exc:
        log.warning("webhook rejected", reason=str(exc))
        return _error(400, "invalid", str(exc))
    if event.type == PING_TYPE:
        metrics.REQUESTS.labels("ping").inc()
        return _json({"status": "ok", "event_id": event.id})
    return await _publish(request, event.id, event.type, event.livemode, body)


async def _publish(
    request: web.Request, event_id: str, event_type: str, livemode: bool, body: bytes
) -> web.Response:
    publishers = request.app[PUBLISHER]
    if not publishers:
        log.warning(
            "webhook refused: broker not connected", event_id=event_id, event_type=event_type
        )
        return _error(503, "unavailable", "broker unavailable, retry later")
    started = time.perf_counter()
    headers = {"received_at": datetime.now(UTC).isoformat(), "livemode": livemode}
    # Not shielded: a publish cancelled half-way (shutdown) is answered with no 200, so Conekta
    # sends it again and the worker deduplicates whatever did reach the broker.
    try:
        await publishers[0].publish(
            topology.EVENTS_EXCHANGE,
            event_type,
            body,
            message_id=event_id,
            message_type=event_type,
            headers=headers,
        )
    except PublishFailed as exc:
        log.warning(
            "webhook refused: publish not confirmed",
            event_id=event_id,
            event_type=event_type,
            error=str(exc),
        )
        return _error(503, "unavailable", "event not stored, retry later")
    metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
    metrics.ACCEPTED.inc()
    # Debug, not info: at thousands per second this line would cost more than the request; the
    # worker logs every event it settles, and metrics count what was accepted.
    log.debug("webhook accepted", event_id=event_id, event_type=event_type)
    return _json({"status": "accepted", "event_id": event_id})


def _json(document: dict[str, str], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json")


async def _broker_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Connect in the background (supervised): while the broker is down the receiver answers 503."""
    settings = app[SETTINGS]

    async def connect() -> None:
        connection = await broker.connect(settings.amqp_url, "conekta-ingest receiver")
        try:
            await broker.declare_topology(connection)
        except BaseException:
            await connection.close()
            raise
        app[PUBLISHER].append(broker.Publisher(connection, settings.publish_timeout))

    task = app[SUPERVISOR].run("broker-connect", connect)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for publisher in app[PUBLISHER]:
        await publisher.close()


def create_app(settings: Settings, supervisor: Supervisor | None = None) -> web.Application:
    """The receiver; its background work runs under `supervisor` (shared with the worker under
    `run`; the caller exits non-zero when it gave up)."""
    keys = signature.load_public_keys(settings.webhook_keys)
    if not keys and not settings.allow_unsigned:
        raise KeyFileError(
            "no webhook key configured: set CONEKTA_WEBHOOK_KEYS to Conekta's public key PEM "
            "(or, for local experiments only, pass --allow-unsigned)"
        )
    if not keys:
        log.warning(UNSIGNED_WARNING)
    metrics.UNSIGNED_MODE.set(0 if keys else 1)
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[KEYS] = keys
    app[PUBLISHER] = []
    app[SUPERVISOR] = supervisor or for_settings(settings, asyncio.Event())
    app.router.add_post(WEBHOOK_PATH, receive_webhook)
    publishers = app[PUBLISHER]
    health.add_routes(
        app,
        {
            "broker": lambda: bool(publishers) and publishers[0].ready,
            "tasks": app[SUPERVISOR].ready,
        },
        lambda: {} if keys else {"warning": UNSIGNED_WARNING},
    )
    app.cleanup_ctx.append(_broker_lifecycle)
    return app
