"""Fulfillment messages as the worker builds them, and subscriber broker users on a test vhost."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from core import topology
from domain.fulfillment import FulfillmentMessage, OrderView, build
from domain.order_event import parse_order_event
from testkit.events import chargeback_event, order_event
from testkit.isolation import rabbitmqctl


def fulfillment_message(
    event_type: str, order_id: str, status: str = "paid", **kwargs: Any
) -> FulfillmentMessage:
    """The message the worker publishes for this order event (domain.fulfillment.build)."""
    if event_type.startswith("charge.chargeback."):
        body = chargeback_event(event_type, f"chbk_{order_id}", charge_id=f"chg_{order_id}")
    else:
        body = order_event(event_type, order_id, **kwargs)
    event = parse_order_event(body)
    view = OrderView(order_id, status, 1000, "MXN", None, event.livemode)
    return build(event, view)


@asynccontextmanager
async def broker_user(amqp_url: str, user: topology.BrokerUser) -> AsyncIterator[str]:
    """A real user with `user`'s permissions on the vhost of `amqp_url`; its AMQP URL."""
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path.lstrip("/"))
    name, password = f"{user.name}-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await rabbitmqctl("add_user", name, password)
    try:
        await rabbitmqctl(
            "set_permissions", "-p", vhost, name, user.configure, user.write, user.read
        )
        netloc = f"{quote(name)}:{password}@{parts.hostname}:{parts.port or 5672}"
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        await rabbitmqctl("delete_user", name)


def subscriber_user(amqp_url: str, name: str) -> AbstractAsyncContextManager[str]:
    """broker_user for the fulfillment subscriber `name` (core.topology.subscriber_user)."""
    return broker_user(amqp_url, topology.subscriber_user(name))
