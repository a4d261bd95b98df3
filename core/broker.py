"""Connections to RabbitMQ, and the confirmed publisher the receiver and worker share.

Publishers and consumers use separate connections: a memory or disk alarm blocks publishing
connections, and a consumer sharing one would stall with them.

A cluster is reached through an AMQP URL per node, comma-separated
(`amqp://u:p@rabbit-1:5672/,amqp://u:p@rabbit-2:5672/`): every connection attempt, the first one
and each reconnection, takes the next node in turn, so losing the node a process is connected to
costs one reconnect, not an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, cast

import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractRobustConnection,
    DeliveryMode,
)
from aio_pika.exceptions import AMQPError
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from core import backoff, lifecycle, topology
from core.errors import ConfigError, PublishFailed

log = structlog.get_logger(__name__)
ABANDON_TIMEOUT = 5.0  # seconds to close a connection given up on


def node_urls(url: str) -> tuple[URL, ...]:
    """The nodes of a comma-separated AMQP URL, in the order given."""
    nodes = tuple(URL(part.strip()) for part in url.split(",") if part.strip())
    if not nodes:
        raise ConfigError("AMQP_URL names no node")
    return nodes


class ClusterConnection(RobustConnection):
    """A robust connection that takes the next node on every connection attempt.

    aio-pika reads `self.url` once per attempt (`Connection.connect`), and otherwise only in
    `__init__` (its query string, the same for every node here) and `__str__` (overridden
    below): so a property that advances on each read rotates through the nodes, on the first
    connect and on every reconnect alike. tests/integration/test_cluster_connection.py pins it.
    """

    def __init__(self, url: URL, *, nodes: tuple[URL, ...], **kwargs: Any) -> None:
        self._nodes = nodes
        self._turn = 0
        super().__init__(url, **kwargs)
        self._turn = 0  # __init__ read the URL once; the first attempt takes nodes[0]

    @property
    def url(self) -> URL:
        node = self._nodes[self._turn % len(self._nodes)]
        self._turn += 1
        return node

    @url.setter
    def url(self, value: URL) -> None:
        if value not in self._nodes:  # update_secret: a new password for every node
            self._nodes = tuple(node.with_password(value.password) for node in self._nodes)

    def __str__(self) -> str:
        return ",".join(
            str(node.with_password("******") if node.password else node) for node in self._nodes
        )


async def connect(
    url: str, name: str, *, attempts: int = 0, delay: float = 1.0
) -> AbstractRobustConnection:
    """Connect, retrying with backoff (forever when attempts == 0); logs each failure.

    Each attempt starts at the next node, and backs off only once every node failed.
    """
    nodes = node_urls(url)
    attempt = 0
    while True:
        attempt += 1
        turn = (attempt - 1) % len(nodes)
        rotated = nodes[turn:] + nodes[:turn]
        connection = ClusterConnection(
            rotated[0], nodes=rotated, client_properties={"connection_name": name}
        )
        try:
            await connection.connect()
        except BaseException as exc:
            # A robust connection that failed (or was cancelled) mid-handshake goes on
            # reconnecting in the background, and swallows the cancellation that should end it:
            # closed here, or it would outlive this attempt and hang the process's exit.
            await lifecycle.quietly(
                "abandoned connection", asyncio.wait_for(connection.close(), ABANDON_TIMEOUT)
            )
            if not isinstance(exc, TimeoutError | OSError | AMQPError):
                raise
            if attempts and attempt >= attempts:
                raise
            log.warning("broker connect failed", connection=name, attempt=attempt, error=str(exc))
            if attempt % len(nodes) == 0:  # every node tried: back off before the next round
                await asyncio.sleep(backoff.delay(attempt // len(nodes), base=delay, cap=10.0))
            continue
        log.info("broker connected", connection=name)
        return connection


class Publisher:
    """Persistent, mandatory, confirmed publishes with a timeout; any doubt raises PublishFailed."""

    def __init__(self, connection: AbstractRobustConnection, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()

    async def _open_channel(self) -> AbstractChannel:
        channel = self._channel
        if channel is None or channel.is_closed:
            async with self._lock:
                if self._channel is None or self._channel.is_closed:
                    self._channel = await self._connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                channel = self._channel
        return channel

    async def close(self) -> None:
        await self._connection.close()

    @property
    def ready(self) -> bool:
        return not self._connection.is_closed and (
            self._channel is None or not self._channel.is_closed
        )

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
        message_type: str | None = None,
        expiration: float | None = None,
    ) -> None:
        properties = aiormq.spec.Basic.Properties(
            message_id=message_id,
            message_type=message_type,
            headers=dict(headers or {}),
            content_type="application/json",
            delivery_mode=DeliveryMode.PERSISTENT.value,
            expiration=None if expiration is None else str(int(expiration * 1000)),
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            # One deadline for everything, opening the channel included: a stalled broker (an
            # alarm, a hung network) must not hold the request forever. aiormq keeps it for the
            # publish and its confirm (one timer, not two: this runs per webhook).
            open_channel = self._channel
            if open_channel is None or open_channel.is_closed:
                open_channel = await asyncio.wait_for(self._open_channel(), self._timeout)
            # The concrete channel: `wait` is not on aiormq's abstract one.
            channel = cast(aiormq.Channel, await open_channel.get_underlay_channel())
            # aiormq directly: aio-pika's Message and Exchange wrappers cost more than the
            # rest of the publish; returns still raise (on_return_raises on the channel).
            # wait=False: the broker's confirm is the wait that matters (it comes after the
            # write); aiormq's default also waits for its writer to drain the socket, holding
            # the channel's lock meanwhile: 309 against 240 us of CPU per publish at 4 in
            # flight, the same at 1 and 64 (python -m bench.publish_wait). Back-pressure stays:
            # aiormq's write queue is bounded, and the confirm has the same deadline.
            confirmation = await channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=True,
                timeout=max(deadline - loop.time(), 0.001),
                wait=False,
            )
        except Exception as exc:  # any doubt means "not stored": the caller answers 503
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise PublishFailed(f"broker answered {type(confirmation).__name__}")


async def queue_stats(
    connection: AbstractRobustConnection, names: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """(messages ready, consumers) per queue, by passive declares on a channel of its own."""
    channel = await connection.channel()
    try:
        stats = {}
        for name in names:
            result = (await channel.declare_queue(name, passive=True)).declaration_result
            stats[name] = (result.message_count or 0, result.consumer_count or 0)
        return stats
    finally:
        await channel.close()


async def declare_topology(connection: AbstractRobustConnection) -> None:
    """Declare every exchange and queue: `migrate` only (it needs the configure permission)."""
    await topology.declare(connection)


async def wait_for_topology(connection: AbstractRobustConnection) -> None:
    """Return once every exchange and queue exists (declared by `migrate`), checking passively.

    The services never declare: their broker users have no configure permission, which would
    also allow deleting. A passive declare needs no permission; a missing name closes the
    channel, so each attempt opens its own.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            missing = await _missing_topology(connection)
        except (AMQPError, OSError) as exc:
            missing = f"{type(exc).__name__}: {exc}"
        if missing is None:
            return
        log.warning(
            "waiting for the broker topology (run `conekta-ingest migrate`)",
            missing=missing,
            attempt=attempt,
        )
        await asyncio.sleep(backoff.delay(attempt, base=1.0, cap=10.0))


async def _missing_topology(connection: AbstractRobustConnection) -> str | None:
    """The first missing exchange or queue, or None when all exist."""
    channel = await connection.channel()
    what = ""
    try:
        for exchange in topology.EXCHANGES:
            what = f"exchange {exchange.name}"
            await channel.declare_exchange(exchange.name, passive=True)
        for queue in topology.QUEUES:
            what = f"queue {queue.name}"
            await channel.declare_queue(queue.name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return what
    finally:
        if not channel.is_closed:
            await channel.close()
    return None
