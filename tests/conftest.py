"""Markers come from the folder (tests/unit is `unit`: no I/O; tests/integration `integration`),
and the fixtures of real services: each run migrates one template database; each test gets its
own database cloned from it and its own RabbitMQ vhost, so tests and concurrent runs never see
each other's data.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest

from core.broker import declare_topology
from core.settings import Settings
from store import Store, migrations
from testkit import signing
from testkit.isolation import (
    clone_database,
    create_vhost,
    database_url_for,
    delete_vhost,
    drop_database,
)
from testkit.services import console_with_users, free_port

HERE = Path(__file__).parent
MARKERS = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "faults": pytest.mark.faults,
    "cluster": pytest.mark.cluster,
    "deploy": pytest.mark.deploy,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).relative_to(HERE).parts[0]
        if folder in MARKERS:
            item.add_marker(MARKERS[folder])


RUN_ID = uuid.uuid4().hex[:8]
_counter = itertools.count()


@pytest.fixture(scope="session")
async def template_database() -> AsyncIterator[str]:
    name = f"conekta_test_{RUN_ID}_template"
    await migrations.migrate(database_url_for(name))
    yield name
    await drop_database(name)


@pytest.fixture
async def database_url(template_database: str) -> AsyncIterator[str]:
    name = f"conekta_test_{RUN_ID}_{next(_counter)}"
    yield await clone_database(name, template_database)
    await drop_database(name)


@pytest.fixture
async def amqp_url() -> AsyncIterator[str]:
    """A vhost of its own with the topology declared, as `migrate` leaves a broker."""
    vhost = f"conekta-test-{RUN_ID}-{next(_counter)}"
    url = await create_vhost(vhost)
    connection = await aio_pika.connect(url)
    await declare_topology(connection)  # type: ignore[arg-type]
    await connection.close()
    yield url
    await delete_vhost(vhost)


@pytest.fixture(scope="session")
def key_pair() -> tuple[Path, Path]:
    """The key testkit.publish_events signs with (testkit.signing)."""
    return signing.key_pair()


@pytest.fixture
def settings(database_url: str, amqp_url: str, key_pair: tuple[Path, Path]) -> Settings:
    return Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        webhook_keys=(key_pair[1],),
        export_key=signing.EXPORT_KEY,
        port=free_port(),
        worker_metrics_port=free_port(),
        batch_wait=0.01,
        outbox_interval=0.2,
        publish_timeout=3.0,
    )


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[aio_pika.abc.AbstractRobustConnection]:
    """A connection to the test vhost (its topology is declared)."""
    connection = await aio_pika.connect_robust(settings.amqp_url)
    yield connection
    await connection.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """The project's store on the test database (the read side: reports, archive)."""
    async with Store.open(database_url) as opened:
        yield opened


@pytest.fixture
async def console(settings: Settings, store: Store) -> AsyncIterator[str]:
    """The ops console on the test database, with testkit's VIEWER and OPERATOR; its URL."""
    async with console_with_users(settings, store) as url:
        yield url
