"""The broker topology, owned here and only here: exchanges, queues, bindings and their arguments.

    receiver ─▶ conekta.events (topic) ─order.*, charge.refunded, chargebacks─▶ conekta.orders
                    │ (no binding matches)
                    └─alternate-exchange─▶ conekta.unhandled (fanout) ─▶ conekta.unhandled.v2

    worker, transient failure ──▶ conekta.retry ──▶ conekta.orders.retry.v2.<n> (TTL)
                                      ──dead-letter──▶ conekta.orders
    worker, permanent / too many attempts ──conekta.dlx──▶ conekta.dead-letters
    any queue past its delivery limit ──conekta.dlx──▶ conekta.dead-letters
    conekta.dead-letters ──worker──▶ Postgres `dead_letters` (where `dlq` commands look)
    worker, applied change ──▶ conekta.fulfillment (topic), for downstream services to bind
                                   ├─alternate-exchange─▶ conekta.fulfillment.unrouted.v2
                                   └─binding keys─▶ conekta.fulfillment.<name> (a subscriber's)
                                          └─delivery limit, reject─▶ its .dlx ─▶ its .dead-letters

Every queue is a quorum queue with an explicit delivery limit and a dead-letter target, so a
message is never dropped by a default (RabbitMQ 4.x limits deliveries to 20 and then drops; 3.x
has no limit): the same behaviour on both. Arguments cannot change on an existing queue
(PRECONDITION_FAILED): change them by versioning the queue name, and list the old name in
RETIRED_QUEUES (its bindings are removed and the worker drains it into the dead-letter table).

A fulfillment subscriber (`subscriber(name)`, names in CONEKTA_FULFILLMENT_SUBSCRIBERS) declares
its own queue, dead-letter exchange and dead-letter queue under `conekta.fulfillment.<name>`, as
its own broker user (`subscriber_user`): it may configure, write and read only its own names and
read `conekta.fulfillment` (to bind); it cannot publish there, nor see conekta.events/orders.

Each component connects as its own broker user with only what it does (USERS below): the
internet-facing receiver can publish to conekta.events and nothing else; only `migrate` may
declare (configure). The retry tiers have an exchange of their own so that no service needs
write access to the default exchange (which reaches every queue by name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractConnection, ExchangeType
from aiormq.exceptions import ChannelNotFoundEntity

EVENTS_EXCHANGE = "conekta.events"
UNHANDLED_EXCHANGE = "conekta.unhandled"
UNHANDLED_QUEUE = "conekta.unhandled.v2"
DEAD_LETTER_EXCHANGE = "conekta.dlx"
RETRY_EXCHANGE = "conekta.retry"
DEAD_LETTER_QUEUE = "conekta.dead-letters"
# The last stop: dead letters the mover itself could not settle 20 times. Nobody consumes it; an
# alert fires on any message in it (read it with the management UI, never lost).
PARKED_QUEUE = "conekta.dead-letters.parked"
FULFILLMENT_EXCHANGE = "conekta.fulfillment"
FULFILLMENT_UNROUTED = "conekta.fulfillment.unrouted"  # the exchange
FULFILLMENT_UNROUTED_QUEUE = "conekta.fulfillment.unrouted.v2"

# The routing key of a signed body without a well-formed type: no binding matches it, so it
# reaches conekta.unhandled, whose consumer archives it as `invalid`.
UNUSABLE_ROUTING_KEY = "unusable"

ORDERS_QUEUE = "conekta.orders"
# Every type the order consumer applies (domain.order_event.HANDLED_TYPES; a test compares them).
# Adding a binding is safe on a running broker; queue arguments are not.
ORDER_EVENT_TYPES = (
    "order.pending_payment",
    "order.declined",
    "order.expired",
    "order.canceled",
    "order.voided",
    "order.paid",
    "order.partially_refunded",
    "order.refunded",
    "charge.refunded",
    "charge.chargeback.created",
    "charge.chargeback.updated",
    "charge.chargeback.under_review",
    "charge.chargeback.won",
    "charge.chargeback.lost",
)

# The dead-letter exchange's routing keys. DEAD_LETTER_KEY is what conekta.orders was declared
# with (its arguments cannot change), so every queue uses it.
DEAD_LETTER_KEY = "conekta.orders.dlq"
PARKED_KEY = PARKED_QUEUE

# A message delivered this many times without being settled (a crash loop, or someone browsing)
# is dead-lettered by the broker itself, never dropped.
DELIVERY_LIMIT = 20

# Fulfillment messages no subscriber binds: kept up to this many (the outbox in Postgres keeps
# every one anyway), so a subscriber binding only `order.paid` cannot fill the broker's disk and
# stop intake. Past it, the oldest go to the dead letters. Alerted well before (depth and age).
UNROUTED_MAX_LENGTH = 100_000

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


@dataclass(frozen=True)
class RetiredQueue:
    """A queue replaced by a versioned name: unbound at declare, drained by the worker."""

    name: str
    bindings: tuple[tuple[str, str], ...]


def _quorum(dead_letter_key: str | None, limit: int, **extra: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": "quorum", "x-delivery-limit": limit}
    if dead_letter_key is not None:
        arguments |= {
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": dead_letter_key,
            # At-least-once dead-lettering needs reject-publish overflow, else it silently
            # degrades to at-most-once.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    return arguments | extra


def retry_queue_name(queue: str, tier: int) -> str:
    return f"{queue}.retry.v2.{tier}"


def retry_tier(attempt: int) -> int:
    """The tier for the n-th retry (1-based): the last tier repeats."""
    return min(max(attempt, 1), len(RETRY_DELAYS_MS)) - 1


EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec(UNHANDLED_EXCHANGE, ExchangeType.FANOUT),
    ExchangeSpec(EVENTS_EXCHANGE, ExchangeType.TOPIC, {"alternate-exchange": UNHANDLED_EXCHANGE}),
    ExchangeSpec(DEAD_LETTER_EXCHANGE, ExchangeType.DIRECT),
    ExchangeSpec(RETRY_EXCHANGE, ExchangeType.DIRECT),
    ExchangeSpec(FULFILLMENT_UNROUTED, ExchangeType.FANOUT),
    ExchangeSpec(
        FULFILLMENT_EXCHANGE, ExchangeType.TOPIC, {"alternate-exchange": FULFILLMENT_UNROUTED}
    ),
)


def queues(limit: int = DELIVERY_LIMIT) -> tuple[QueueSpec, ...]:
    """Every queue; `limit` is each one's delivery limit (tests use a small one)."""
    key = DEAD_LETTER_KEY
    retries = tuple(
        QueueSpec(
            retry_queue_name(ORDERS_QUEUE, tier),
            # Expired messages go back to work (the default exchange, by queue name).
            _quorum(
                None,
                limit,
                **{
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": ORDERS_QUEUE,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            ),
            ((RETRY_EXCHANGE, retry_queue_name(ORDERS_QUEUE, tier)),),
        )
        for tier, delay in enumerate(RETRY_DELAYS_MS)
    )
    unrouted = _quorum(
        key,
        limit,
        # drop-head, not reject-publish: a full queue must not stop the relay for everyone. The
        # dropped head is dead-lettered (at most once: RabbitMQ allows no more with drop-head).
        **{
            "x-max-length": UNROUTED_MAX_LENGTH,
            "x-overflow": "drop-head",
            "x-dead-letter-strategy": "at-most-once",
        },
    )
    return (
        # Unchanged since v1 (it had its limit and target already): the name stays.
        QueueSpec(
            ORDERS_QUEUE,
            _quorum(key, limit),
            tuple((EVENTS_EXCHANGE, k) for k in ORDER_EVENT_TYPES),
        ),
        QueueSpec(UNHANDLED_QUEUE, _quorum(key, limit), ((UNHANDLED_EXCHANGE, ""),)),
        QueueSpec(DEAD_LETTER_QUEUE, _quorum(PARKED_KEY, limit), ((DEAD_LETTER_EXCHANGE, key),)),
        QueueSpec(PARKED_QUEUE, _quorum(None, limit), ((DEAD_LETTER_EXCHANGE, PARKED_KEY),)),
        QueueSpec(FULFILLMENT_UNROUTED_QUEUE, unrouted, ((FULFILLMENT_UNROUTED, ""),)),
        *retries,
    )


QUEUES = queues()

# v1 names whose arguments changed. Their retry tiers are not listed: nothing routes to them by
# binding, and their messages expire back into conekta.orders within ten minutes.
RETIRED_QUEUES: tuple[RetiredQueue, ...] = (
    RetiredQueue("conekta.orders.dlq", ((DEAD_LETTER_EXCHANGE, DEAD_LETTER_KEY),)),
    RetiredQueue("conekta.unhandled", ((UNHANDLED_EXCHANGE, ""),)),
    RetiredQueue("conekta.fulfillment.unrouted", ((FULFILLMENT_UNROUTED, ""),)),
)


@dataclass(frozen=True)
class BrokerUser:
    """A component's broker user: RabbitMQ permission regexes over exchange and queue names
    (configure: declare/delete; write: publish to an exchange, bind a queue; read: consume,
    get, purge a queue)."""

    name: str
    configure: str
    write: str
    read: str
    purpose: str


def only(*names: str) -> str:
    """A permission regex matching exactly these resource names (none: matches nothing)."""
    return f"^({'|'.join(re.escape(n) for n in names)})$" if names else "^$"


# RabbitMQ calls the default exchange "amq.default" in permissions.
_DEFAULT_EXCHANGE = "amq.default"
_OURS = "^conekta\\..*"

RECEIVER_USER = BrokerUser(
    "conekta-receiver", only(), only(EVENTS_EXCHANGE), only(), "publishes verified webhooks"
)
WORKER_USER = BrokerUser(
    "conekta-worker",
    only(),
    # Not conekta.events: reconcile applies what it fetches itself (worker/reconcile.py).
    only(FULFILLMENT_EXCHANGE, RETRY_EXCHANGE, DEAD_LETTER_EXCHANGE),
    # its work queues, the dead letters it moves into Postgres, the v1 queues it drains
    only(
        ORDERS_QUEUE,
        UNHANDLED_QUEUE,
        DEAD_LETTER_QUEUE,
        *(retired.name for retired in RETIRED_QUEUES),
    ),
    "consumes events and dead letters; publishes fulfillment, retries and dead letters",
)
CONSOLE_USER = BrokerUser(
    "conekta-console",
    only(),
    # dlq replay: back to where each message first went (dead letters live in Postgres);
    # fulfillment replay: to one subscriber's queue only, by name through the default exchange
    # (it could already reach conekta.orders through conekta.events: no new power over money)
    only(EVENTS_EXCHANGE, FULFILLMENT_EXCHANGE, RETRY_EXCHANGE, _DEFAULT_EXCHANGE),
    only(),
    "on-call: replays dead letters and fulfillment messages",
)
MIGRATE_USER = BrokerUser(
    "conekta-migrate",
    _OURS,
    f"^(conekta\\..*|{re.escape(_DEFAULT_EXCHANGE)})$",  # retry queues dead-letter to ""
    _OURS,
    "declares the topology (the only user that may configure)",
)
MONITOR_USER = BrokerUser(
    "conekta-monitor", only(), only(), only(), "queue depths by passive declare (KEDA)"
)
USERS: tuple[BrokerUser, ...] = (
    RECEIVER_USER,
    WORKER_USER,
    CONSOLE_USER,
    MIGRATE_USER,
    MONITOR_USER,
)


# -- fulfillment subscribers -----------------------------------------------------------------

SUBSCRIBER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")  # a DNS label too (k8s resource names)
SUBSCRIBER_DEAD_LETTER_SUFFIX = ".dead-letters"
SUBSCRIBER_EXCHANGE_SUFFIX = ".dlx"
# The header a replay to one queue carries: a direct publish's routing key is the queue's name.
ROUTING_KEY_HEADER = "x-conekta-routing-key"


def _reserved_subscriber_names() -> frozenset[str]:
    """First segments after `conekta.fulfillment.` already used by the project's own names:
    a subscriber named so would be granted them (`unrouted` -> conekta.fulfillment.unrouted.v2)."""
    prefix = FULFILLMENT_EXCHANGE + "."
    names = [e.name for e in EXCHANGES] + [q.name for q in QUEUES]
    names += [r.name for r in RETIRED_QUEUES]
    return frozenset(n[len(prefix) :].split(".")[0] for n in names if n.startswith(prefix))


RESERVED_SUBSCRIBER_NAMES = _reserved_subscriber_names()


def subscriber_name_problem(name: str) -> str | None:
    """Why `name` cannot name a fulfillment subscriber, or None."""
    if not SUBSCRIBER_NAME.match(name):
        return (
            f"subscriber name {name!r}: 1-40 of lower-case letters, digits and '-', starting "
            "with a letter (no dots: a dot would reach into another subscriber's names)"
        )
    if name in RESERVED_SUBSCRIBER_NAMES:
        taken = ", ".join(sorted(RESERVED_SUBSCRIBER_NAMES))
        return f"subscriber name {name!r} clashes with the project's own queues (reserved: {taken})"
    return None


def subscriber_queue(name: str) -> str:
    return f"{FULFILLMENT_EXCHANGE}.{name}"


def subscriber_dead_letter_queue(name: str) -> str:
    return subscriber_queue(name) + SUBSCRIBER_DEAD_LETTER_SUFFIX


@dataclass(frozen=True)
class SubscriberTopology:
    """What a subscriber declares (as its own user): its dead-letter exchange, then its queues."""

    name: str
    exchange: ExchangeSpec
    queue: QueueSpec
    dead_letter_queue: QueueSpec


def subscriber(
    name: str, binding_keys: Sequence[str] = (), limit: int = DELIVERY_LIMIT
) -> SubscriberTopology:
    """A subscriber's queue `conekta.fulfillment.<name>`: quorum, a delivery limit, its own
    dead-letter exchange and queue; bound to conekta.fulfillment by one key per event type.

    No length limit: a full queue with reject-publish would refuse the relay's publish and stall
    every subscriber; drop-head would lose messages. A queue growing is alerted instead."""
    if (problem := subscriber_name_problem(name)) is not None:
        raise ValueError(problem)
    queue, dead_letters = subscriber_queue(name), subscriber_dead_letter_queue(name)
    exchange = queue + SUBSCRIBER_EXCHANGE_SUFFIX
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-delivery-limit": limit,
        "x-dead-letter-exchange": exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    return SubscriberTopology(
        name,
        ExchangeSpec(exchange, ExchangeType.FANOUT),
        QueueSpec(queue, arguments, tuple((FULFILLMENT_EXCHANGE, k) for k in binding_keys)),
        QueueSpec(
            dead_letters,
            {"x-queue-type": "quorum", "x-delivery-limit": limit},
            ((exchange, ""),),
        ),
    )


def subscriber_user(name: str) -> BrokerUser:
    """`conekta-fulfillment-<name>`: everything on its own names, read on conekta.fulfillment."""
    if (problem := subscriber_name_problem(name)) is not None:
        raise ValueError(problem)
    own = f"{re.escape(subscriber_queue(name))}(\\..+)?"
    return BrokerUser(
        f"conekta-fulfillment-{name}",
        f"^{own}$",
        f"^{own}$",
        f"^({own}|{re.escape(FULFILLMENT_EXCHANGE)})$",
        f"fulfillment subscriber {name}: declares, binds and consumes its own queues",
    )


async def declare(connection: AbstractConnection) -> None:
    """Declare everything, idempotently. Exchanges first: queues bind and dead-letter to them."""
    channel = await connection.channel()
    try:
        await _declare(connection, channel, QUEUES)
    finally:
        await channel.close()


async def _declare(
    connection: AbstractConnection, channel: AbstractChannel, specs: Sequence[QueueSpec]
) -> None:
    exchanges = {}
    for spec in EXCHANGES:
        exchanges[spec.name] = await channel.declare_exchange(
            spec.name, spec.type, durable=True, arguments=spec.arguments
        )
    for queue_spec in specs:
        queue = await channel.declare_queue(
            queue_spec.name, durable=True, arguments=queue_spec.arguments
        )
        for exchange_name, routing_key in queue_spec.bindings:
            await queue.bind(exchanges[exchange_name], routing_key)
    for retired in await existing_retired_queues(connection):
        queue = await channel.get_queue(retired.name, ensure=False)
        for exchange_name, routing_key in retired.bindings:
            await queue.unbind(exchanges[exchange_name], routing_key)


async def existing_retired_queues(connection: AbstractConnection) -> list[RetiredQueue]:
    """The retired queues still on the broker."""
    return [r for r in RETIRED_QUEUES if await probe_queue(connection, r.name) is not None]


async def probe_queue(connection: AbstractConnection, name: str) -> tuple[int, int] | None:
    """A queue's ready messages and consumers, or None when it does not exist: a passive declare
    (no permission needed, no management API) on its own channel, since a missing queue closes
    the channel it is asked on."""
    probe = await connection.channel()
    try:
        declared = await probe.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:  # missing; the broker closed the probe channel
        return None
    finally:
        if not probe.is_closed:
            await probe.close()
    result = declared.declaration_result
    return result.message_count or 0, result.consumer_count or 0


@dataclass(frozen=True)
class SubscriberState:
    """A configured subscriber's queue as the broker sees it now."""

    name: str
    queue: str
    exists: bool
    messages: int  # ready, not yet delivered (unacknowledged ones are not counted)
    consumers: int
    dead_letters: int | None  # in its dead-letter queue; None when that queue does not exist

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "exists": self.exists,
            "messages": self.messages,
            "consumers": self.consumers,
            "dead_letter_queue": subscriber_dead_letter_queue(self.name),
            "dead_letters": self.dead_letters,
        }


async def subscriber_states(
    connection: AbstractConnection, names: Sequence[str]
) -> list[SubscriberState]:
    states = []
    for name in names:
        queue = await probe_queue(connection, subscriber_queue(name))
        dead = await probe_queue(connection, subscriber_dead_letter_queue(name))
        messages, consumers = queue or (0, 0)
        states.append(
            SubscriberState(
                name,
                subscriber_queue(name),
                queue is not None,
                messages,
                consumers,
                None if dead is None else dead[0],
            )
        )
    return states
