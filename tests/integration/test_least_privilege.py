"""Least privilege on the real services: each component's broker user (rabbitmqctl, on the test's
own vhost) and database role (worker, console, on-call CLI: grants.sql) can do their work and
nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import aiohttp
import aiormq
import asyncpg
import orjson
import pytest

from core import broker as core_broker
from core import signature, topology
from core.errors import PublishFailed
from core.settings import Settings
from ops import actions, dead_letters, invalid
from store import Store, migrations
from testkit import signing
from testkit.events import order_event
from testkit.isolation import create_vhost, database_url_for, delete_vhost, rabbitmqctl
from testkit.services import balances, count, running_receiver, running_worker
from testkit.wait import wait_for
from worker import judge

Db: TypeAlias = "asyncpg.Connection[Any]"
REFUSED = (aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed)


@pytest.fixture
async def broker_users(amqp_url: str) -> AsyncIterator[dict[str, str]]:
    """An AMQP URL per component (topology.USERS), each user with exactly its permissions."""
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path.lstrip("/"))
    urls, created = {}, []
    for user in topology.USERS:
        name, password = f"{user.name}-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        await rabbitmqctl("add_user", name, password)
        created.append(name)
        await rabbitmqctl(
            "set_permissions", "-p", vhost, name, user.configure, user.write, user.read
        )
        netloc = f"{quote(name)}:{password}@{parts.hostname}:{parts.port or 5672}"
        urls[user.name] = urlunsplit(parts._replace(netloc=netloc))
    yield urls
    for name in created:
        await rabbitmqctl("delete_user", name)


RUNTIME_ROLES = ("conekta_worker", "conekta_console", "conekta_oncall")


@pytest.fixture(scope="session")
async def logins(template_database: str) -> dict[str, str]:
    """A login role in each runtime role (migrate made them), as the services connect (roles
    are cluster-wide): role -> login."""
    names = {role: role.replace("conekta_", "conekta_test_") for role in RUNTIME_ROLES}
    admin = await asyncpg.connect(database_url_for("postgres"))
    try:
        for role, name in names.items():
            with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                await admin.execute(f"CREATE ROLE {name} LOGIN IN ROLE {role}")
    finally:
        await admin.close()
    return names


def as_role(database_url: str, role: str) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def open_channel(url: str) -> tuple[aio_pika.abc.AbstractConnection, Any]:
    connection = await aio_pika.connect(url)
    return connection, await connection.channel()


async def _consume(channel: Any) -> None:
    queue = await channel.get_queue(topology.ORDERS_QUEUE, ensure=False)
    await queue.consume(_ignore)


async def _ignore(message: Any) -> None:
    pass


async def _get(channel: Any) -> None:
    await (await channel.get_queue(topology.ORDERS_QUEUE, ensure=False)).get(fail=False)


async def _purge(channel: Any) -> None:
    await (await channel.get_queue(topology.ORDERS_QUEUE, ensure=False)).purge()


async def _delete_queue(channel: Any) -> None:
    await channel.queue_delete(topology.ORDERS_QUEUE)


async def _declare_queue(channel: Any) -> None:
    await channel.declare_queue("conekta.sneaky", durable=True)


async def _delete_exchange(channel: Any) -> None:
    await channel.exchange_delete(topology.EVENTS_EXCHANGE)


async def _bind(channel: Any) -> None:
    queue = await channel.get_queue(topology.UNHANDLED_QUEUE, ensure=False)
    await queue.bind(topology.FULFILLMENT_EXCHANGE, "#")


FORBIDDEN_TO_RECEIVER = (
    _consume,
    _get,
    _purge,
    _delete_queue,
    _declare_queue,
    _delete_exchange,
    _bind,
)


async def test_receiver_user_publishes_events_and_can_do_nothing_else(
    broker_users: dict[str, str],
) -> None:
    url = broker_users[topology.RECEIVER_USER.name]
    connection = await core_broker.connect(url, "test receiver", attempts=1)
    publisher = core_broker.Publisher(connection, timeout=5)
    try:
        await core_broker.wait_for_topology(connection)  # passive checks need no permission
        for event_type in ("order.paid", "charge.paid"):  # routed, and via the alternate exchange
            await publisher.publish(
                topology.EVENTS_EXCHANGE, event_type, b"{}", message_id=uuid.uuid4().hex
            )
    finally:
        await publisher.close()

    for operation in FORBIDDEN_TO_RECEIVER:
        plain, channel = await open_channel(url)
        try:
            with pytest.raises(REFUSED):
                await operation(channel)
        finally:
            await plain.close()
    for exchange in (topology.FULFILLMENT_EXCHANGE, topology.RETRY_EXCHANGE, ""):
        publisher = core_broker.Publisher(
            await core_broker.connect(url, "test receiver", attempts=1), timeout=5
        )
        try:
            with pytest.raises(PublishFailed, match="ACCESS_REFUSED"):
                await publisher.publish(exchange, topology.ORDERS_QUEUE, b"{}", message_id="x")
        finally:
            await publisher.close()


async def test_services_work_with_their_own_users_and_roles(
    settings: Settings,
    broker_users: dict[str, str],
    logins: dict[str, str],
    db: Db,
    key_pair: tuple[Path, Path],
) -> None:
    runtime_url = as_role(settings.database_url, logins["conekta_worker"])
    oncall_url = as_role(settings.database_url, logins["conekta_oncall"])
    receiver = replace(settings, amqp_url=broker_users[topology.RECEIVER_USER.name])
    worker = replace(
        settings, amqp_url=broker_users[topology.WORKER_USER.name], database_url=runtime_url
    )
    bodies = [
        order_event("order.paid", "ord_lp1", amount=2000, fee=60, customer_id="cus_lp"),
        order_event("order.paid", "ord_lp2", currency="EUR"),  # permanent: dead-lettered
    ]
    key = signature.load_private_key(key_pair[0])
    async with running_worker(worker), running_receiver(receiver) as url:
        async with aiohttp.ClientSession() as session:
            for body in bodies:
                headers = {"Content-Type": "application/json", "DIGEST": signature.sign(body, key)}
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200

        async def applied() -> bool:
            return await count(db, "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL") == 1

        await wait_for(applied, what="paid order applied and its fulfillment published")
        await wait_for(
            lambda: _depth(broker_users[topology.MONITOR_USER.name], topology.ORDERS_QUEUE, 0),
            what="the queue drained (the monitor user's passive declare)",
        )

        async def dead_lettered() -> bool:
            return await count(db, "SELECT count(*) FROM dead_letters WHERE status = 'dead'") == 1

        await wait_for(
            dead_lettered,
            what="the EUR order dead-lettered via conekta.dlx and moved into Postgres",
        )
    assert await balances(db) == {
        "conekta:receivable": 1940,
        "conekta:fees": 52,  # 60 / 1.16 = 51.7
        "tax:vat_on_fees": 8,
        "customer:cus_lp": 2000,
    }
    # On-call, as the console's broker user and the on-call role: replay the dead letter (it
    # goes back where it first went), then purge it (a tombstone in the archive, an audit line).
    console = core_broker.Publisher(
        await core_broker.connect(
            broker_users[topology.CONSOLE_USER.name], "test console", attempts=1
        ),
        timeout=5,
    )
    try:
        async with Store.open(oncall_url) as store:
            replayed = await dead_letters.replay(
                store, console, actions.Selection(everything=True), "t"
            )
            assert len(replayed.done) == 1
            async with running_worker(worker):
                await wait_for(dead_lettered, what="the replayed EUR order dead-lettered again")
            purged = await dead_letters.purge(
                store, actions.Selection(everything=True), "t", reason="test"
            )
            assert len(purged.done) == 1
    finally:
        await console.close()
    assert await count(db, "SELECT count(*) FROM events WHERE outcome = 'purged'") == 1
    # The worker's retry tier: its exchange routes to the retry queue (mandatory: no return).
    connection = await core_broker.connect(worker.amqp_url, "test worker", attempts=1)
    publisher = core_broker.Publisher(connection, timeout=5)
    try:
        queue = topology.retry_queue_name(topology.ORDERS_QUEUE, 0)
        await publisher.publish(topology.RETRY_EXCHANGE, queue, b"{}", message_id="r")
    finally:
        await publisher.close()


async def _depth(url: str, queue: str, expected: int) -> bool:
    connection, channel = await open_channel(url)  # the monitor user: passive declare only
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return bool(declared.declaration_result.message_count == expected)
    finally:
        await connection.close()


async def test_runtime_roles_cannot_change_schema_triggers_history_or_balances(
    database_url: str, logins: dict[str, str], db: Db
) -> None:
    await db.execute(
        "INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency,"
        " event_id, livemode, effective_at, amount)"
        " VALUES ('payment:o:c', 'payment', 'o', 'c', 'MXN', 'e', false, now(), 5)"
    )
    await db.execute(
        "INSERT INTO accounts (name, type, normal_side)"
        " VALUES ('x', 'asset', 'debit'), ('y', 'revenue', 'credit')"
    )
    await db.execute(
        "INSERT INTO ledger_entries (transaction_id, account, currency, amount)"
        " SELECT id, a, 'MXN', v FROM ledger_transactions, (VALUES ('x', 5), ('y', -5)) t(a, v)"
    )
    for login in logins.values():
        await _refused_history_changes(as_role(database_url, login))
    assert await count(db, "SELECT count(*) FROM ledger_entries") == 2
    # Balances follow the entries (the owner's trigger), not a runtime role's UPDATE.
    assert await balances(db) == {"x": 5, "y": 5}  # each on its normal side


async def _refused_history_changes(url: str) -> None:
    runtime = await asyncpg.connect(url)
    try:
        refused = [
            "ALTER TABLE ledger_entries ADD COLUMN note text",
            "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_immutable",
            "ALTER TABLE events DISABLE TRIGGER ALL",
            "DELETE FROM ledger_entries",
            "UPDATE ledger_entries SET amount = 1",
            "DELETE FROM ledger_transactions",
            "TRUNCATE ledger_entries",
            "TRUNCATE events",
            "UPDATE events SET body = '\\x00'",
            "UPDATE events SET request = NULL",  # the webhook's request: insert-only
            "DELETE FROM events",
            "DELETE FROM event_ids",
            "DELETE FROM outbox",
            "UPDATE outbox SET body = '\\x00'",
            "DROP TABLE orders",
            "UPDATE accounts SET type = 'equity'",  # an account's type is declared once
            "DELETE FROM ledger_closes",  # a closed month stays closed
            "CREATE TABLE sneaky (id int)",
            "SELECT drop_month_partition('events', current_date, 0, 0)",
            "UPDATE balances SET balance = 0",  # finding 3: balances move only with entries
            "INSERT INTO balances (account, currency, livemode, balance) VALUES ('x', 'MXN', true,"
            " 1)",
            "DELETE FROM balances",
            "INSERT INTO console_users (name, role, password_hash) VALUES ('mallory', 'operator',"
            " 'x')",
            "UPDATE console_users SET role = 'operator', password_hash = 'x'",
            "DELETE FROM console_users",
            "SELECT ledger_entries_to_balances()",
        ]
        for statement in refused:
            with pytest.raises(
                (asyncpg.InsufficientPrivilegeError, asyncpg.FeatureNotSupportedError)
            ):
                await runtime.execute(statement)
        assert await runtime.fetchval("SELECT count(*) FROM ledger_entries") == 2
        await runtime.execute("UPDATE outbox SET sent_at = now() WHERE false")  # what it uses
    finally:
        await runtime.close()


async def test_only_the_console_reads_console_users_and_sessions(
    database_url: str, logins: dict[str, str]
) -> None:
    """A compromised worker (it parses untrusted input) cannot read or take over the console's
    people; the console reads them and keeps its sessions, and writes no user."""
    tables = ("console_users", "console_sessions", "console_login_failures")
    for role in ("conekta_worker", "conekta_oncall"):
        connection = await asyncpg.connect(as_role(database_url, logins[role]))
        try:
            for table in tables:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await connection.fetch(f"SELECT * FROM {table}")
        finally:
            await connection.close()
    console = await asyncpg.connect(as_role(database_url, logins["conekta_console"]))
    try:
        await console.fetch("SELECT name, role, password_hash, disabled_at FROM console_users")
        await console.fetch("SELECT * FROM console_sessions")
        await console.execute("DELETE FROM console_login_failures WHERE false")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await console.execute("UPDATE console_users SET disabled_at = NULL")
    finally:
        await console.close()


async def test_the_one_shared_role_of_earlier_versions_keeps_nothing(db: Db) -> None:
    """conekta_runtime (worker and console in one role) had the console's users and the
    balances: after migrate it holds no privilege here, and migrate never makes it again."""
    grants = await db.fetchval(
        "SELECT count(*) FROM information_schema.role_table_grants"
        " WHERE grantee = 'conekta_runtime' AND table_schema = 'public'"
    )
    assert grants == 0


async def test_every_table_has_a_line_in_grants_sql(db: Db) -> None:
    tables = {
        r["relname"]
        for r in await db.fetch(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
        )
    }
    named = migrations.grants()
    missing = sorted(t for t in tables if f" ON {t} " not in named)
    assert not missing, f"add a line to store/migrations/grants.sql for {missing}"


async def test_services_wait_for_the_topology_migrate_declares() -> None:
    vhost = f"conekta-test-bare-{uuid.uuid4().hex[:8]}"
    url = await create_vhost(vhost)  # no topology yet
    try:
        connection = await core_broker.connect(url, "test waits", attempts=1)
        missing = await core_broker._missing_topology(connection)
        assert missing == f"exchange {topology.EXCHANGES[0].name}"
        await core_broker.declare_topology(connection)  # what `migrate` does
        await asyncio.wait_for(core_broker.wait_for_topology(connection), timeout=30)
        await connection.close()
    finally:
        await delete_vhost(vhost)


async def test_console_role_replays_and_purges_invalid_events(
    database_url: str, logins: dict[str, str], store: Store, db: Db
) -> None:
    """The console's invalid-event actions need only its column grants (a purge writes
    `outcome` and `note`; the body stays as it came)."""
    bodies = [
        order_event("order.paid", f"ord_lpi{i}", created_at=1_700_000_100 + i) for i in (1, 2)
    ]
    await store.events.archive(
        [
            judge.invalid_row(body, None, "a rule since fixed", signing.signed_request(body))
            for body in bodies
        ]
    )
    first, second = (orjson.loads(body)["id"] for body in bodies)
    async with Store.open(as_role(database_url, logins["conekta_console"])) as runtime:
        replayed = await invalid.replay(
            runtime, actions.Selection(ids=(first,)), "t", verifier=signing.verifier()
        )
        purged = await invalid.purge(runtime, actions.Selection(ids=(second,)), "t", reason="x")
    assert (replayed.totals, purged.done) == ({"applied": 1}, [second])
    rows = dict(await db.fetch("SELECT event_id, outcome FROM events"))
    assert rows == {first: "applied", second: "purged"}
