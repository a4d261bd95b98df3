"""The receiver over real HTTP against a real RabbitMQ vhost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import orjson
import pytest

from core import signature, topology
from core.errors import KeyFileError
from core.settings import Settings
from testkit.events import SAMPLES, order_event
from testkit.isolation import amqp_url_for, rabbitmqctl
from testkit.services import drain, free_port, running_receiver
from testkit.wait import wait_for


async def post(url: str, body: bytes, key: Path | None, **headers: str) -> tuple[int, Any]:
    all_headers = {"Content-Type": "application/json", **headers}
    if key is not None:
        all_headers["DIGEST"] = signature.sign(body, signature.load_private_key(key))
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=all_headers) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.fixture
def private_key(key_pair: tuple[Path, Path]) -> Path:
    return key_pair[0]


async def test_every_sample_is_accepted_and_queued_byte_for_byte(
    settings: Settings, broker: aio_pika.abc.AbstractRobustConnection, private_key: Path
) -> None:
    posted: dict[str, bytes] = {}
    async with running_receiver(settings) as url:
        for path in sorted(SAMPLES.glob("*.json")):
            body = path.read_bytes()
            status, answer = await post(url, body, private_key)
            assert status == 200, (path.name, answer)
            if answer["status"] == "accepted":
                posted[answer["event_id"]] = body
    channel = await broker.channel()
    queued = await drain(channel, topology.ORDERS_QUEUE) + await drain(
        channel, topology.UNHANDLED_QUEUE
    )
    assert {m.message_id: m.body for m in queued} == posted
    ping_id = orjson.loads((SAMPLES / "webhook_ping.json").read_bytes())["id"]
    assert ping_id not in posted  # pings are answered, not enqueued
    by_id = {m.message_id: m for m in queued}
    paid = by_id["637e79cb70d06300013ea169"]
    assert paid.routing_key == "order.paid"
    assert paid.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert paid.headers["livemode"] is True and "received_at" in paid.headers
    handled = {m.routing_key for m in queued if m.routing_key in topology.ORDER_EVENT_TYPES}
    assert {m.routing_key for m in queued} - handled == {"charge.paid", "charge.declined"}


async def test_header_name_is_case_insensitive(
    settings: Settings, broker: Any, private_key: Path
) -> None:
    body = order_event("order.paid", "ord_case")
    digest = signature.sign(body, signature.load_private_key(private_key))
    async with running_receiver(settings) as url:
        status, _ = await post(url, body, None, digest=digest)
    assert status == 200


@pytest.mark.parametrize("case", ["missing", "wrong_key", "tampered", "garbage"])
async def test_bad_signature_is_401_and_nothing_queued(
    settings: Settings, broker: Any, private_key: Path, tmp_path: Path, case: str
) -> None:
    body = order_event("order.paid", "ord_sig")
    other_private, _ = signature.generate_key_pair(tmp_path, "other")
    async with running_receiver(settings) as url:
        if case == "missing":
            status, answer = await post(url, body, None)
        elif case == "wrong_key":
            status, answer = await post(url, body, other_private)
        elif case == "tampered":
            digest = signature.sign(body, signature.load_private_key(private_key))
            status, answer = await post(url, body.replace(b"10000", b"10001"), None, DIGEST=digest)
        else:
            status, answer = await post(url, body, None, DIGEST="!!!")
    assert status == 401
    assert "signature" in answer["error"]
    assert await drain(await broker.channel(), topology.ORDERS_QUEUE) == []


async def test_second_configured_key_is_accepted(
    settings: Settings, broker: Any, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    new_private, new_public = signature.generate_key_pair(tmp_path, "rotated")
    rotated = replace(settings, webhook_keys=(key_pair[1], new_public))
    async with running_receiver(rotated) as url:
        assert (await post(url, order_event("order.paid", "ord_a"), key_pair[0]))[0] == 200
        assert (await post(url, order_event("order.paid", "ord_b"), new_private))[0] == 200


async def test_unsigned_mode_refuses_invalid_json_with_400(settings: Settings, broker: Any) -> None:
    unsigned = replace(settings, webhook_keys=(), allow_unsigned=True)
    async with running_receiver(unsigned) as url:
        status, answer = await post(url, b"{not json", None)
    assert status == 400
    assert "JSON" in answer["error"]


async def test_unsigned_mode_names_the_failing_field_with_400(
    settings: Settings, broker: Any
) -> None:
    document = orjson.loads(order_event("order.paid", "ord_x"))
    document["data"]["object"]["amount"] = "lots"
    unsigned = replace(settings, webhook_keys=(), allow_unsigned=True)
    async with running_receiver(unsigned) as url:
        status, answer = await post(url, orjson.dumps(document), None)
    assert status == 400
    assert answer["error"].startswith("data.object.amount: ")


async def test_wrong_content_type_is_415(
    settings: Settings, broker: Any, private_key: Path
) -> None:
    async with running_receiver(settings) as url:
        status, _ = await post(
            url, order_event("order.paid", "o"), private_key, **{"Content-Type": "text/plain"}
        )
    assert status == 415


async def test_body_over_limit_is_413(settings: Settings, broker: Any, private_key: Path) -> None:
    small = replace(settings, max_body_bytes=2048)
    document = orjson.loads(order_event("order.paid", "ord_big"))
    document["padding"] = "x" * 4096
    async with running_receiver(small) as url:
        status, _ = await post(url, orjson.dumps(document), private_key)
    assert status == 413


async def test_chunked_body_over_limit_is_413(
    settings: Settings, broker: Any, private_key: Path
) -> None:
    """No Content-Length to refuse it by: the body is measured once it is read."""
    small = replace(settings, max_body_bytes=2048)
    document = orjson.loads(order_event("order.paid", "ord_big_chunked"))
    document["padding"] = "x" * 4096
    body = orjson.dumps(document)

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    headers = {
        "Content-Type": "application/json",
        "DIGEST": signature.sign(body, signature.load_private_key(private_key)),
    }
    async with (
        running_receiver(small) as url,
        aiohttp.ClientSession() as session,
        session.post(url, data=chunks(), headers=headers) as response,
    ):
        assert response.status == 413


async def test_broker_unreachable_is_503(settings: Settings, private_key: Path) -> None:
    down = replace(settings, amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    async with running_receiver(down, wait_ready=False) as url:
        status, answer = await post(url, order_event("order.paid", "ord_down"), private_key)
        async with (
            aiohttp.ClientSession() as session,
            session.get(url.replace("/webhooks/conekta", "/readyz")) as ready,
        ):
            assert ready.status == 503
    assert status == 503
    assert "retry" in answer["error"]


async def test_broker_nack_is_503(settings: Settings, broker: Any, private_key: Path) -> None:
    vhost = settings.amqp_url.rsplit("/", 1)[1].replace("%2F", "/")
    # A full queue with reject-publish overflow makes the broker nack the publish. Quorum queues
    # apply the limit approximately (one message over it), and the policy takes a moment.
    await rabbitmqctl(
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        "queues",
        "full",
        f"^{topology.ORDERS_QUEUE}$",
        '{"max-length": 1}',
    )
    accepted: list[str] = []
    async with running_receiver(settings) as url:

        async def refused() -> bool:
            status, answer = await post(url, order_event("order.paid", "ord_full"), private_key)
            if status == 200:
                accepted.append(answer["event_id"])
            return status == 503

        await wait_for(refused, what="a nacked publish answered 503")
    queued = await drain(await broker.channel(), topology.ORDERS_QUEUE)
    assert sorted(m.message_id for m in queued) == sorted(accepted)  # 200 means stored


async def test_receiver_reconnects_by_itself(
    settings: Settings, broker: Any, private_key: Path
) -> None:
    vhost = settings.amqp_url.rsplit("/", 1)[1]
    assert amqp_url_for(vhost) == settings.amqp_url
    async with running_receiver(settings) as url:
        assert (await post(url, order_event("order.paid", "ord_1"), private_key))[0] == 200
        await rabbitmqctl("close_all_connections", "-p", vhost.replace("%2F", "/"), "test")

        async def accepted_again() -> bool:
            status, _ = await post(url, order_event("order.paid", "ord_2"), private_key)
            assert status in (200, 503)
            return status == 200

        await wait_for(accepted_again, timeout=30, what="receiver to reconnect")


async def test_health_ready_and_metrics(settings: Settings, broker: Any, private_key: Path) -> None:
    async with running_receiver(settings) as url:
        await post(url, order_event("order.paid", "ord_m"), private_key)
        base = url.removesuffix("/webhooks/conekta")
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/healthz") as health:
                assert health.status == 200
            async with session.get(base + "/readyz") as ready:
                assert ready.status == 200
            async with session.get(base + "/metrics") as metrics:
                text = await metrics.text()
    assert 'conekta_ingest_requests_total{outcome="accepted"}' in text
    assert "conekta_ingest_publish_seconds_bucket" in text
    assert "conekta_ingest_requests_in_flight" in text


async def test_no_key_refuses_to_start_unless_unsigned_is_allowed(
    settings: Settings, broker: Any
) -> None:
    from ingest.receiver import create_app

    with pytest.raises(KeyFileError, match="CONEKTA_WEBHOOK_KEYS"):
        create_app(replace(settings, webhook_keys=()))
    unsigned = replace(settings, webhook_keys=(), allow_unsigned=True)
    async with running_receiver(unsigned) as url:
        status, _ = await post(url, order_event("order.paid", "ord_u"), None)
        async with (
            aiohttp.ClientSession() as session,
            session.get(url.replace("/webhooks/conekta", "/readyz")) as ready,
        ):
            body = await ready.json()
    assert status == 200
    assert "UNSIGNED" in body["warning"]


async def test_confirm_timeout_is_503(settings: Settings, broker: Any, private_key: Path) -> None:
    from urllib.parse import urlsplit, urlunsplit

    from testkit.proxy import TcpProxy

    parts = urlsplit(settings.amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()
    userinfo = parts.netloc.rpartition("@")[0]
    through = urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}"))
    stalled = replace(settings, amqp_url=through, publish_timeout=0.5)
    try:
        async with running_receiver(stalled) as url:
            first, _ = await post(url, order_event("order.paid", "ord_fast"), private_key)
            proxy.stall()  # the broker never answers: no confirm arrives
            status, answer = await post(url, order_event("order.paid", "ord_slow"), private_key)
            proxy.unstall()
    finally:
        await proxy.close()
    assert first == 200
    assert status == 503
    assert "not stored" in answer["error"]


async def test_unroutable_publish_is_refused(settings: Settings, broker: Any) -> None:
    from core.broker import Publisher
    from core.errors import PublishFailed

    publisher = Publisher(broker, timeout=3)
    with pytest.raises(PublishFailed):
        # conekta.dlx has no alternate exchange: an unknown key is returned, not confirmed
        await publisher.publish(topology.DEAD_LETTER_EXCHANGE, "nowhere", b"{}", message_id="x")
    await publisher.publish(topology.EVENTS_EXCHANGE, "order.paid", b"{}", message_id="y")
