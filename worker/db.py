"""The one module that imports asyncpg: pools, named queries, and driver errors made ours."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool = asyncpg.Pool
Record = asyncpg.Record

_QUERY_HEADER = re.compile(r"^-- (\w+): .+$", re.MULTILINE)


def _load_queries() -> dict[str, str]:
    text = resources.files("worker").joinpath("queries.sql").read_text()
    parts = _QUERY_HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


QUERIES = _load_queries()


class DatabaseError(Exception):
    """Base of the errors this project raises for database trouble."""


class TransientDatabaseError(DatabaseError):
    """Worth retrying as it is: a deadlock, a serialization failure, a lost connection."""


class DatabaseUnavailable(TransientDatabaseError):
    """Cannot reach the database at all: stop taking work until it is back."""


class DataRejected(DatabaseError):
    """The database refuses this data for good (a CHECK, a type, a value out of range)."""


_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionFailureError,
)
_TRANSIENT = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.QueryCanceledError,
)

_REJECTED = (
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.DataError,
)


def translate(exc: BaseException) -> BaseException:
    """The project's error for a driver error (or the error itself when it is not one)."""
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, _TRANSIENT):
        return TransientDatabaseError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, _REJECTED):
        return DataRejected(f"{type(exc).__name__}: {exc}")
    return exc


@asynccontextmanager
async def transaction(pool: Pool) -> AsyncIterator[Connection]:
    """A connection in a transaction; driver errors come out translated."""
    try:
        async with pool.acquire() as connection, connection.transaction():
            yield connection
    except Exception as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 8) -> Pool:
    try:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, command_timeout=60
        )
    except Exception as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc
    assert pool is not None
    return pool


async def connect(url: str) -> Connection:
    return await asyncpg.connect(url)


async def fetch(connection: Connection, name: str, *args: Any) -> list[Record]:
    return await connection.fetch(QUERIES[name], *args)


async def execute(connection: Connection, name: str, *args: Any) -> str:
    return await connection.execute(QUERIES[name], *args)


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
