"""The broker topology, owned here and only here: exchanges, queues, bindings and their arguments.

    receiver ─▶ conekta.events (topic) ─order.paid|pending_payment|declined─▶ conekta.orders
                    │ (no binding matches)
                    └─alternate-exchange─▶ conekta.unhandled (fanout) ─▶ conekta.unhandled

    worker, transient failure ──▶ conekta.orders.retry.<n> (TTL) ──dead-letter──▶ conekta.orders
    worker, permanent / too many attempts ──▶ conekta.orders.dlq
    conekta.orders past its delivery limit (a crash loop) ──conekta.dlx──▶ conekta.orders.dlq
    worker, applied change ──▶ conekta.fulfillment (topic), for downstream services to bind
                                   └─alternate-exchange─▶ conekta.fulfillment.unrouted

Every queue is a quorum queue. Arguments cannot change on an existing queue (PRECONDITION_FAILED):
change them by versioning the queue name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel, ExchangeType

EVENTS_EXCHANGE = "conekta.events"
UNHANDLED_EXCHANGE = "conekta.unhandled"
UNHANDLED_QUEUE = "conekta.unhandled"
DEAD_LETTER_EXCHANGE = "conekta.dlx"
FULFILLMENT_EXCHANGE = "conekta.fulfillment"
FULFILLMENT_UNROUTED = "conekta.fulfillment.unrouted"

# The routing key of a signed body without a well-formed type: no binding matches it, so it
# reaches conekta.unhandled, whose consumer archives it as `invalid`.
UNUSABLE_ROUTING_KEY = "unusable"

ORDERS_QUEUE = "conekta.orders"
ORDER_EVENT_TYPES = ("order.paid", "order.pending_payment", "order.declined")

# A message redelivered this many times without being settled (the worker crashed on it each
# time) is dead-lettered by the broker itself, so a crash loop cannot block the queue forever.
DELIVERY_LIMIT = 20

# Retry tiers: a message waits in tier n for RETRY_DELAYS_MS[n] and then returns to its queue.
RETRY_DELAYS_MS = (1_000, 5_000, 30_000, 120_000, 600_000)


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: ExchangeType
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, Any]
    bindings: tuple[tuple[str, str], ...] = ()  # (exchange, routing key)


def _quorum(**extra: Any) -> dict[str, Any]:
    return {"x-queue-type": "quorum", **extra}


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dlq"


ORDERS_DLQ = dead_letter_queue_name(ORDERS_QUEUE)


def retry_queue_name(queue: str, tier: int) -> str:
    return f"{queue}.retry.{tier}"


def retry_tier(attempt: int) -> int:
    """The tier for the n-th retry (1-based): the last tier repeats."""
    return min(max(attempt, 1), len(RETRY_DELAYS_MS)) - 1


EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec(UNHANDLED_EXCHANGE, ExchangeType.FANOUT),
    ExchangeSpec(EVENTS_EXCHANGE, ExchangeType.TOPIC, {"alternate-exchange": UNHANDLED_EXCHANGE}),
    ExchangeSpec(DEAD_LETTER_EXCHANGE, ExchangeType.DIRECT),
    ExchangeSpec(FULFILLMENT_UNROUTED, ExchangeType.FANOUT),
    ExchangeSpec(
        FULFILLMENT_EXCHANGE, ExchangeType.TOPIC, {"alternate-exchange": FULFILLMENT_UNROUTED}
    ),
)


def _work_queue(name: str, routing_keys: Sequence[str]) -> tuple[QueueSpec, ...]:
    main = QueueSpec(
        name,
        _quorum(
            **{
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-dead-letter-routing-key": dead_letter_queue_name(name),
                # At-least-once dead-lettering needs reject-publish overflow, else it silently
                # degrades to at-most-once.
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        ),
        tuple((EVENTS_EXCHANGE, key) for key in routing_keys),
    )
    dlq_name = dead_letter_queue_name(name)
    dlq = QueueSpec(dlq_name, _quorum(), ((DEAD_LETTER_EXCHANGE, dlq_name),))
    retries = tuple(
        QueueSpec(
            retry_queue_name(name, tier),
            _quorum(
                **{
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": name,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
            ),
        )
        for tier, delay in enumerate(RETRY_DELAYS_MS)
    )
    return (main, dlq, *retries)


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(UNHANDLED_QUEUE, _quorum(), ((UNHANDLED_EXCHANGE, ""),)),
    # Fulfillment messages no subscriber has bound a queue for yet: kept, never dropped.
    QueueSpec(FULFILLMENT_UNROUTED, _quorum(), ((FULFILLMENT_UNROUTED, ""),)),
    *_work_queue(ORDERS_QUEUE, ORDER_EVENT_TYPES),
)


async def declare(channel: AbstractChannel) -> None:
    """Declare everything, idempotently. Exchanges first: queues bind and dead-letter to them."""
    exchanges = {}
    for spec in EXCHANGES:
        exchanges[spec.name] = await channel.declare_exchange(
            spec.name, spec.type, durable=True, arguments=spec.arguments
        )
    for queue_spec in QUEUES:
        queue = await channel.declare_queue(
            queue_spec.name, durable=True, arguments=queue_spec.arguments
        )
        for exchange_name, routing_key in queue_spec.bindings:
            await queue.bind(exchanges[exchange_name], routing_key)
