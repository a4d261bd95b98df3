"""The one module that imports asyncpg: connections, pools, transactions, and driver errors
turned into the project's own (core.errors). SQL itself lives in the worker's store.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeAlias, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from core.errors import DatabaseUnavailable, DataRejected, TransientDatabaseError

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool = asyncpg.Pool
Record = asyncpg.Record
T = TypeVar("T")
log = structlog.get_logger(__name__)

# Driver errors with no SQLSTATE: the connection itself is gone or never came.
_CONNECTION_LOST = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.InterfaceError,
    # A failover: no host of a multi-host URL is the primary yet (target_session_attrs). A
    # connection still talking to a server that is now a standby gets 25006: see _BY_CODE.
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)

# SQLSTATE -> what it means to us, by class (the first two characters), with a few exact codes
# first. "unavailable": the database cannot take work from anyone now (hold it, no retries
# spent); "transient": retry this transaction; "rejected": this data never goes in. The README's
# table says the same.
_BY_CODE = {
    "25006": "unavailable",  # read_only_sql_transaction: a replica, or a failover in progress
    "55P03": "transient",  # lock_not_available (lock timeout)
    "57014": "transient",  # query_canceled (statement timeout): not a database-wide condition
}
_BY_CLASS = {
    "08": "unavailable",  # connection exception
    "53": "unavailable",  # insufficient resources: disk full, out of memory, too many connections
    "57": "unavailable",  # operator intervention: shutdown, crash, cannot connect now
    "40": "transient",  # transaction rollback: serialization failure, deadlock
    "22": "rejected",  # data exception
    "23": "rejected",  # integrity constraint violation
}


def classify(sqlstate: str) -> str:
    """'unavailable', 'transient', 'rejected' or 'unknown' for a SQLSTATE."""
    return _BY_CODE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2], "unknown")


def translate(exc: BaseException) -> BaseException:
    """The project's error for a driver error (or the error itself when it is not one)."""
    if isinstance(exc, _CONNECTION_LOST):
        return DatabaseUnavailable(f"{type(exc).__name__}: {exc}")
    if not isinstance(exc, asyncpg.PostgresError):
        return exc
    sqlstate = str(exc.sqlstate or "")
    text = f"{type(exc).__name__} (SQLSTATE {sqlstate}): {exc}"
    kind = classify(sqlstate)
    if kind == "unavailable":
        return DatabaseUnavailable(text)
    if kind == "rejected":
        return DataRejected(text)
    if kind == "unknown":
        # Retried like a deadlock, but loudly: someone should decide where it belongs.
        log.error(
            "unclassified database error, treated as transient", sqlstate=sqlstate, error=text
        )
    return TransientDatabaseError(text)


async def translated(operation: Awaitable[T]) -> T:
    """Await `operation`, raising the project's errors instead of the driver's."""
    try:
        return await operation
    except Exception as exc:
        ours = translate(exc)
        if ours is exc:
            raise
        raise ours from exc


@asynccontextmanager
async def transaction(pool: Pool) -> AsyncIterator[Connection]:
    """A connection in a transaction; driver errors come out translated."""
    try:
        async with pool.acquire() as connection, connection.transaction():
            yield connection
    except asyncpg.exceptions.ReadOnlySQLTransactionError as exc:
        # The server was demoted: reconnect every pooled connection (to the new primary).
        await pool.expire_connections()
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        ours = translate(exc)
        if ours is exc:
            raise
        raise ours from exc


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 8) -> Pool:
    pool = await translated(
        asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=60)
    )
    assert pool is not None
    return pool


async def connect(url: str) -> Connection:
    return await translated(asyncpg.connect(url))


async def ensure_database(url: str) -> bool:
    """Create the database named in `url` when it is missing; True when it was created.

    Connects to the `postgres` database only when the target is missing, so an application role
    without access to it (a managed or operator-run Postgres) migrates an existing database fine.
    """
    try:
        await (await asyncpg.connect(url)).close()
    except asyncpg.exceptions.InvalidCatalogNameError:
        pass  # missing: create it below
    else:
        return False
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    connection = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        try:
            await connection.execute(f'CREATE DATABASE "{_identifier(name)}"')
        except (asyncpg.exceptions.DuplicateDatabaseError, asyncpg.exceptions.UniqueViolationError):
            return False  # another process created it first
        log.info("database created", database=name)
        return True
    finally:
        await connection.close()


def _identifier(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ValueError(f"unsupported database name: {name!r}")
    return name
