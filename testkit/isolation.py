"""Throwaway databases and RabbitMQ vhosts, so test and benchmark runs never share data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from core.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL
from store import migrations

BASE_DATABASE_URL = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
BASE_AMQP_URL = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)


def database_url_for(name: str) -> str:
    return urlunsplit(urlsplit(BASE_DATABASE_URL)._replace(path=f"/{name}"))


def amqp_url_for(vhost: str) -> str:
    return urlunsplit(urlsplit(BASE_AMQP_URL)._replace(path=f"/{quote(vhost, safe='')}"))


async def rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {out!r} {err!r}")


async def admin_execute(sql: str) -> None:
    connection = await asyncpg.connect(database_url_for("postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def create_vhost(vhost: str) -> str:
    await rabbitmqctl("add_vhost", vhost)
    user = urlsplit(BASE_AMQP_URL).username or "guest"
    await rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    return amqp_url_for(vhost)


async def delete_vhost(vhost: str) -> None:
    await rabbitmqctl("delete_vhost", vhost)


async def clone_database(name: str, template: str) -> str:
    await admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return database_url_for(name)


async def drop_database(name: str) -> None:
    await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def scratch_database(purpose: str) -> AsyncIterator[str]:
    """A migrated database of its own (conekta_test_<purpose>_<random>), dropped after; its URL."""
    name = f"conekta_test_{purpose}_{uuid.uuid4().hex[:8]}"
    url = database_url_for(name)
    try:
        await migrations.migrate(url)
        yield url
    finally:
        await drop_database(name)
