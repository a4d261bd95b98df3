"""The admin API against its own OpenAPI document, with schemathesis: generated requests,
authenticated as an operator, never a 5xx, and every response (status, content type, body)
as the document says. The console runs as a real process on its own database and vhost."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from console.openapi import document
from core import broker as core_broker
from core.errors import UnapplicableEvent
from domain.archive import ArchiveRow
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import settlement
from store import Store
from testkit import signing
from testkit.events import SAMPLES
from testkit.fake_conekta import FakeConekta, running
from testkit.isolation import clone_database, create_vhost, delete_vhost, drop_database
from testkit.services import free_port
from testkit.settlement_model import ConektaAccount
from tests.integration.test_settlement import day
from worker import settlement as pulling
from worker.conekta_api import ConektaApi
from worker.judge import judged_row

OPERATOR = ("contract", "contract-password-1")
schema = schemathesis.openapi.from_dict(document())
schema.config.generation.update(max_examples=15, deterministic=True)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
async def contract_services(template_database: str) -> AsyncIterator[tuple[str, str]]:
    """A database with the sample events applied, and a vhost with the topology."""
    name = f"conekta_test_contract_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    vhost = name.replace("_", "-")
    database_url = await clone_database(name, template_database)
    try:
        amqp_url = await create_vhost(vhost)
        try:
            connection = await core_broker.connect(amqp_url, "contract test", attempts=3)
            await core_broker.declare_topology(connection)
            await connection.close()
            await _apply_samples(database_url)
            yield database_url, amqp_url
        finally:
            await delete_vhost(vhost)
    finally:
        await drop_database(name)


async def _apply_samples(database_url: str) -> None:
    now = datetime.now(UTC)
    items = []
    for path in sorted(SAMPLES.glob("order.*.json")):
        body = path.read_bytes()
        try:
            items.append(Incoming(parse_order_event(body), body, now))
        except UnapplicableEvent:
            continue  # a type with no handler yet
    # One invalid event too (a sample without its payment status): the invalid-events answers
    # then carry items for the schema to check.
    document = orjson.loads(items[0].body)
    document["id"] = "0" * 20 + "beef"
    del document["data"]["object"]["payment_status"]
    invalid = judged_row(orjson.dumps(document), now)
    assert isinstance(invalid, ArchiveRow)
    async with Store.open(database_url) as store:
        await store.apply.batch(items)
        await store.events.archive([replace(invalid, request=signing.signed_request(invalid.body))])
        await _settlement_day(store)


async def _settlement_day(store: Store) -> None:
    """Issue 23's day in live mode (the console's default API mode), pulled from the fake API,
    with the bank line of its transfer: /api/v1/settlement answers with something in each list."""
    model = ConektaAccount(livemode=True)
    transfer = day(model)
    conekta = FakeConekta()
    conekta.transactions, conekta.transfers = model.transactions, model.transfers
    conekta.balance = model.balance()
    async with running(conekta) as url, ConektaApi.open(url, conekta.key) as api:
        await pulling.pull(store, api, True)
    line = f"2026-11-12,{transfer['amount'] / 100:.2f},SPEI CONEKTA 4401234,Conekta payout\n"
    data = ("date,amount,reference,description\n" + line).encode()
    await settlement.import_statement(store, data, "bank.csv", "bbva", currency="MXN", actor="t")


@pytest.fixture(scope="module")
def console_url(contract_services: tuple[str, str]) -> Iterator[str]:
    env = {
        **os.environ,
        "DATABASE_URL": contract_services[0],
        "AMQP_URL": contract_services[1],
        "CONEKTA_INGEST_LOG_LEVEL": "warning",
        "CONEKTA_WEBHOOK_KEYS": str(signing.key_pair()[1]),  # replays verify bodies again
    }
    command = [sys.executable, "-m", "cli", "console"]
    subprocess.run(
        [*command, "add-user", OPERATOR[0], "--role", "operator", "--password-stdin"],
        input=OPERATOR[1] + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen([*command, "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the console did not start"
            assert process.poll() is None, "the console exited"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_the_document_is_served_to_logged_in_users(console_url: str) -> None:
    served = requests.get(f"{console_url}/api/openapi.json", auth=OPERATOR, timeout=10)
    assert served.json() == document()
    assert served.json()["openapi"] == "3.1.0"


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_contract(case: schemathesis.Case[Any], console_url: str) -> None:
    auth = "Basic " + aiohttp.BasicAuth(*OPERATOR).encode().split(" ", 1)[1]
    case.call_and_validate(base_url=console_url, headers={"Authorization": auth}, checks=CHECKS)


# -- every query parameter of every GET, with values made to hurt (issue 24, finding 9) ---------

QUERY_ROUTES = [
    (path, [p["name"] for p in ops["get"]["parameters"] if p["in"] == "query"])
    for path, ops in document()["paths"].items()
    if "get" in ops and "{" not in path
]
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
OFFSET = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | TEXT
    | st.sampled_from([2**63, -(2**63) - 1, 1e30, -1e308, "0001-01-01T00:00:00+05:00"])
)


def _time(when: datetime, offset: timedelta) -> str:
    return when.replace(tzinfo=timezone(offset)).isoformat()


def _cursor(values: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


QUERY_VALUES = (
    TEXT
    | st.integers().map(str)
    | st.sampled_from(["0", "-1", "²", "٣", "1e3", "9" * 10, " ", "0001-01-01", "9999-12-31"])
    | st.builds(_time, st.datetimes(), OFFSET)
    | st.builds(_time, st.sampled_from([datetime.min, datetime.max]), OFFSET)
    | st.lists(JSON_LEAVES, max_size=3).map(_cursor)
)


@given(
    st.sampled_from(QUERY_ROUTES).flatmap(
        lambda route: st.tuples(
            st.just(route[0]),
            st.dictionaries(st.sampled_from(route[1]), QUERY_VALUES, max_size=3)
            if route[1]
            else st.just({}),
        )
    )
)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_query_value_makes_a_500(console_url: str, call: tuple[str, dict[str, str]]) -> None:
    path, query = call
    response = requests.get(f"{console_url}{path}", params=query, auth=OPERATOR, timeout=30)
    assert response.status_code < 500, (path, query, response.text)
    if response.status_code == 400:
        error = response.json()["error"]
        assert any(error.startswith(name) for name in query), (path, query, error)
