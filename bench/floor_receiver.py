"""The receiver's floor: what any correct receiver must do, and nothing else: read the body,
verify its RSA signature, parse it, publish it with confirms, and pass its DIGEST along (the job
grew with issue 24: the worker verifies each body again, so the DIGEST must reach it).

Same broker, same exchange and quorum queue, same persistence and mandatory flag as the product.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import cast

import aio_pika
import aiormq
import orjson
import uvloop
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core import topology

CHANNEL = web.AppKey("channel", aio_pika.abc.AbstractChannel)
KEY = web.AppKey("key", rsa.RSAPublicKey)


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        digest = request.headers["Digest"]
        signature = base64.b64decode(digest)
        request.app[KEY].verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except (KeyError, ValueError, InvalidSignature):
        return web.json_response({"status": "error"}, status=401)
    document = orjson.loads(body)
    # The cheapest confirmed publish there is (aiormq, as the product's publisher does).
    channel = cast(aiormq.Channel, await request.app[CHANNEL].get_underlay_channel())
    await channel.basic_publish(
        body,
        exchange=topology.EVENTS_EXCHANGE,
        routing_key=document["type"],
        properties=aiormq.spec.Basic.Properties(
            message_id=document["id"],
            delivery_mode=2,
            headers={"request": orjson.dumps({"headers": {"digest": digest}}).decode()},
        ),
        mandatory=True,
        timeout=5,
        wait=False,  # as the product's Publisher: the confirm is the wait
    )
    return web.json_response({"status": "accepted"})


async def ready(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def main(port: int, amqp_url: str, key: rsa.RSAPublicKey) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    app = web.Application()
    app[KEY] = key
    app[CHANNEL] = await connection.channel(publisher_confirms=True, on_return_raises=True)
    app.router.add_post("/webhooks/conekta", handle)
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await __import__("asyncio").Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--key", type=Path, required=True, help="public key PEM")
    args = parser.parse_args()
    public_key = serialization.load_pem_public_key(args.key.read_bytes())
    assert isinstance(public_key, rsa.RSAPublicKey)
    uvloop.run(main(args.port, args.amqp_url, public_key))
