"""The HTTP receiver: verify the signature, publish with confirms, and only then answer 200.

Store first, judge later: with keys configured the signature is the only gate. A signed body is
queued whatever it contains (the worker judges it and archives what it cannot apply as
`invalid`); only `--allow-unsigned` mode, with no signature to trust, answers 400 to a body that
is not a usable event.

Bodies are read in a bounded number of slots, each within a deadline, so slow uploads cannot
grow the process without end before any signature is checked.
"""

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

from core import broker, health, lifecycle, signature, topology
from core import request as request_info
from core.errors import InvalidEvent, KeyFileError, PublishFailed
from core.event import PING_TYPE, parse_event, route
from core.settings import Settings
from core.supervisor import Supervisor, for_settings
from ingest import metrics

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/webhooks/conekta"
SETTINGS = web.AppKey("settings", Settings)
KEYS = web.AppKey("keys", tuple[rsa.RSAPublicKey, ...])
PUBLISHER = web.AppKey("publisher", list[broker.Publisher])  # empty until connected
READ_SLOTS = web.AppKey("read_slots", asyncio.Semaphore)
SUPERVISOR = web.AppKey("supervisor", Supervisor)

UNSIGNED_WARNING = "accepting UNSIGNED webhooks: anyone can post events (never in production)"


def _error(status: int, outcome: str, message: str) -> web.Response:
    metrics.REQUESTS.labels(outcome).inc()
    return _json({"status": "error", "error": message}, status)


async def receive_webhook(request: web.Request) -> web.Response:
    metrics.IN_FLIGHT.count += 1
    try:
        return await _receive(request)
    finally:
        metrics.IN_FLIGHT.count -= 1


async def _receive(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if request.content_type != "application/json":
        return _error(415, "unsupported_media_type", "content type must be application/json")
    if request.content_length is not None and request.content_length > settings.max_body_bytes:
        return _too_large(settings.max_body_bytes)
    body = await _read_body(request, settings)
    if isinstance(body, web.Response):
        return body
    keys = request.app[KEYS]
    if not keys:
        return await _receive_unsigned(request, body)
    if not signature.verify(body, request.headers.get("Digest"), keys):
        log.warning("webhook signature rejected", remote=request.remote)
        return _error(401, "bad_signature", "missing or invalid DIGEST signature")
    seen = route(body)
    if seen.type == PING_TYPE:
        metrics.REQUESTS.labels("ping").inc()
        return _json({"status": "ok", "event_id": seen.key})
    # A body without a well-formed type goes to a routing key nothing binds: the unhandled
    # queue, whose consumer archives it as `invalid`.
    routing_key = seen.type or topology.UNUSABLE_ROUTING_KEY
    return await _publish(request, seen.key, routing_key, seen.livemode, body)


async def _receive_unsigned(request: web.Request, body: bytes) -> web.Response:
    """No signature to trust: refuse (400) what is not a usable event, naming the field."""
    try:
        event = parse_event(body)
    except InvalidEvent as exc:
        log.warning("webhook rejected", reason=str(exc))
        return _error(400, "invalid", str(exc))
    if event.type == PING_TYPE:
        metrics.REQUESTS.labels("ping").inc()
        return _json({"status": "ok", "event_id": event.id})
    return await _publish(request, event.id, event.type, event.livemode, body)


async def _read_body(request: web.Request, settings: Settings) -> bytes | web.Response:
    """The body, read in one of a bounded number of slots and within a deadline.

    Waiting for a slot longer than the deadline is 503 (we are busy; Conekta retries); a body
    that takes longer than the deadline to arrive is 408. Either way the connection is closed,
    so nothing more of that body is buffered.
    """
    if request.content.is_eof():
        # The whole body came with the headers (most webhooks): it is in aiohttp's buffer
        # already, so no slot, no deadline and no read loop (each is measurable per request).
        body = request.content.read_nowait()
        if len(body) > settings.max_body_bytes:
            return _too_large(settings.max_body_bytes)
        return body
    slots = request.app[READ_SLOTS]
    if slots.locked():
        # While it waits, the rest of its body stays in the kernel's socket buffer, not in ours.
        pause = not request.content.is_eof()
        if pause:
            request.protocol.pause_reading()
        try:
            async with asyncio.timeout(settings.body_read_timeout):
                await slots.acquire()
        except TimeoutError:
            return _closing(_error(503, "busy", "too many uploads in progress, retry later"))
        if pause:
            request.protocol.resume_reading()
    else:
        await slots.acquire()
    try:
        async with asyncio.timeout(settings.body_read_timeout):
            return await _read_capped(request, settings.max_body_bytes)
    except TimeoutError:
        log.warning("webhook body too slow", remote=request.remote)
        return _closing(_error(408, "too_slow", "body not received in time"))
    finally:
        slots.release()


async def _read_capped(request: web.Request, limit: int) -> bytes | web.Response:
    """The body, in one buffer sized once from Content-Length (no growth, no leftover slack)."""
    size = request.content_length
    buffer = bytearray(size if size is not None else 0)
    view, filled = memoryview(buffer), 0
    # iter_any, not iter_chunks: the latter spun forever on some bodies (found by the fuzz).
    async for chunk in request.content.iter_any():
        end = filled + len(chunk)
        if end > limit:
            return _too_large(limit)
        if end > len(buffer):  # no (or a wrong) Content-Length: grow as needed
            view.release()
            buffer.extend(bytes(end - len(buffer)))
            view = memoryview(buffer)
        view[filled:end] = chunk
        filled = end
    view.release()
    del buffer[filled:]
    return bytes(buffer)


def _too_large(limit: int) -> web.Response:
    return _closing(_error(413, "too_large", f"body over {limit} bytes"))


def _closing(response: web.Response) -> web.Response:
    response.force_close()
    return response


async def _publish(
    request: web.Request, event_id: str, event_type: str, livemode: bool | None, body: bytes
) -> web.Response:
    publishers = request.app[PUBLISHER]
    if not publishers:
        log.warning(
            "webhook refused: broker not connected", event_id=event_id, event_type=event_type
        )
        return _error(503, "unavailable", "broker unavailable, retry later")
    started = time.perf_counter()
    headers: dict[str, object] = {"received_at": datetime.now(UTC).isoformat()}
    if livemode is not None:
        headers["livemode"] = livemode
    # For the archive: who sent it, with which headers (no credentials, bounded in size).
    kept = request_info.select(request.remote, request.headers.items())
    headers[request_info.HEADER] = request_info.encode(kept)
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
    # Not logged: at thousands per second a line per webhook would cost more than the request;
    # the worker logs every event it settles, and metrics count what was accepted.
    metrics.ACCEPTED.inc()
    return _json({"status": "accepted", "event_id": event_id})


def _json(document: dict[str, str], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, content_type="application/json")


async def _broker_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Connect in the background (supervised): while the broker is down the receiver answers 503."""
    settings = app[SETTINGS]

    async def connect() -> None:
        connection = await broker.connect(settings.amqp_url, "conekta-ingest receiver")
        try:
            await broker.wait_for_topology(connection)
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
        await lifecycle.quietly("publisher", publisher.close())


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
    app = web.Application(
        client_max_size=settings.max_body_bytes, handler_args={"read_bufsize": 2**14}
    )
    app[SETTINGS] = settings
    app[KEYS] = keys
    app[PUBLISHER] = []
    app[READ_SLOTS] = asyncio.Semaphore(settings.max_concurrent_reads)
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
