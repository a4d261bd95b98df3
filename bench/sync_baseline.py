"""The synchronous design of the same job, in the same stack, for `end_to_end.vs_sync_baseline`:
aiohttp + asyncpg, and in the request itself: verify the DIGEST, then one transaction that
archives the event, books the payment and writes the outbox row (the product's own store and
domain, one event per transaction), then 200. No broker: Conekta waits for the database.

Several of these processes share the port (SO_REUSEPORT), as a pre-fork server's workers
would: on 2 cores, 2 processes are the fair match of the receiver + worker pair.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

import uvloop
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from core import database, signature
from core.errors import ConektaIngestError
from domain.order_event import parse_order_event
from domain.plan import Incoming
from store import Store

STORE = web.AppKey("store", Store)
KEYS = web.AppKey("keys", tuple[rsa.RSAPublicKey, ...])


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    keys: tuple[rsa.RSAPublicKey, ...] = request.app[KEYS]
    if not signature.verify(body, request.headers.get("Digest"), keys):
        return web.json_response({"status": "error"}, status=401)
    try:
        incoming = Incoming(parse_order_event(body), body, datetime.now(UTC))
        await request.app[STORE].apply.batch([incoming])
    except ConektaIngestError as exc:
        return web.json_response({"status": "error", "error": str(exc)}, status=503)
    return web.json_response({"status": "accepted"})


async def ready(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve(port: int, database_url: str, key: Path) -> None:
    pool = await database.create_pool(database_url, max_size=16)
    app = web.Application()
    app[STORE] = Store(pool)
    app[KEYS] = signature.load_public_keys([key])
    app.router.add_post("/webhooks/conekta", handle)
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--key", type=Path, required=True, help="public key PEM")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.database_url, args.key))
