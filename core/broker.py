"""Connections to RabbitMQ, and the confirmed publisher the receiver and worker share.

Publishers and consumers use separate connections: a memory or disk alarm blocks publishing
connections, and a consumer sharing one would stall with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractRobustConnection,
    DeliveryMode,
)
from aio_pika.exceptions import AMQPError

from core import backoff, topology
from core.errors import PublishFailed

log = structlog.get_logger(__name__)


async def connect(
    url: str, name: str, *, attempts: int = 0, delay: float = 1.0
) -> AbstractRobustConnection:
    """Connect, retrying with backoff (forever when attempts == 0); logs each failure."""
    attempt = 0
    while True:
        attempt += 1
        try:
            connection = await aio_pika.connect_robust(
                url, client_properties={"connection_name": name}
            )
        except (TimeoutError, OSError, AMQPError) as exc:
            if attempts and attempt >= attempts:
                raise
            log.warning("broker connect failed", connection=name, attempt=attempt, error=str(exc))
            await asyncio.sleep(backoff.delay(attempt, base=delay, cap=10.0))
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
        try:
            # One deadline for everything, opening the channel included: a stalled broker (an
            # alarm, a hung network) must not hold the request forever.
            async with asyncio.timeout(self._timeout):
                channel = await (await self._open_channel()).get_underlay_channel()
                # aiormq directly: aio-pika's Message and Exchange wrappers cost more than the
                # rest of the publish; returns still raise (on_return_raises on the channel).
                confirmation = await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                )
        except Exception as exc:  # any doubt means "not stored": the caller answers 503
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise PublishFailed(f"broker answered {type(confirmation).__name__}")


async def declare_topology(connection: AbstractRobustConnection) -> None:
    channel = await connection.channel()
    try:
        await topology.declare(channel)
    finally:
        await channel.close()
