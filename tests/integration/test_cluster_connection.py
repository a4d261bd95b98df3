"""A comma-separated AMQP URL: a process reaches the broker through whichever node answers, on
its first connect and when the node it was on goes away."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from aio_pika.abc import AbstractRobustConnection

from core import broker
from testkit.proxy import TcpProxy
from testkit.services import free_port
from testkit.wait import wait_for


def via(url: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}", query=""))


async def node(amqp_url: str) -> TcpProxy:
    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()
    return proxy


async def test_first_connect_skips_a_dead_node(amqp_url: str) -> None:
    dead = via(amqp_url, free_port())
    connection = await broker.connect(f"{dead},{amqp_url}", "test", attempts=2, delay=30)
    try:
        channel = await connection.channel()  # no 30 s backoff: the second node was tried at once
        await channel.close()
    finally:
        await connection.close()


async def test_reconnect_goes_to_the_next_node(amqp_url: str) -> None:
    first, second = await node(amqp_url), await node(amqp_url)
    nodes = ",".join(via(amqp_url, p.port) + "?reconnect_interval=0.2" for p in (first, second))
    connection = await broker.connect(nodes, "test", attempts=1)
    try:
        assert first._writers and not second._writers
        await first.cut()  # the node dies and stays dead
        await wait_for(lambda: _on(second), what="reconnected through the second node")
        await wait_for(lambda: _usable(connection), what="connection usable again")
    finally:
        await connection.close()
        await first.close()
        await second.close()


async def _on(proxy: TcpProxy) -> bool:
    return bool(proxy._writers)


async def _usable(connection: AbstractRobustConnection) -> bool:
    if not connection.connected.is_set():
        return False
    channel = await connection.channel()
    await channel.close()
    return True
