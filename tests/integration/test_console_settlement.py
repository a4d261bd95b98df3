"""The console's Settlement page and /api/v1/settlement (issue 23): issue 23's day (the fake
Conekta API pulled, the webhooks applied, the bank statement imported), read by a viewer
through a console that logs in as the conekta_console role; before and after the on-call
person's `settle match --apply`. The page and the API read, they never post."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from console import users
from core.settings import Settings
from domain import payouts
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import settlement, settlement_report
from store import Store
from testkit.fake_conekta import FakeConekta
from testkit.services import VIEWER, basic, running_console
from testkit.settlement_model import ConektaAccount
from tests.integration.test_console import browser_like, log_in
from tests.integration.test_least_privilege import as_role, logins
from tests.integration.test_settlement import HOUR, MX, T0, day, fake, webhooks
from worker import settlement as pulling
from worker.conekta_api import ConektaApi

pytestmark = pytest.mark.integration
__all__ = ["fake", "logins"]  # the fixtures

TAX = Decimal("0.16")


@pytest.fixture
async def viewer_console(
    settings: Settings, store: Store, logins: dict[str, str]
) -> AsyncIterator[str]:
    """The console as it runs: a conekta_console login, the API key in test mode."""
    await users.add_user(store, VIEWER[0], "viewer", VIEWER[1], "test")
    console_settings = replace(
        settings,
        database_url=as_role(settings.database_url, logins["conekta_console"]),
        conekta_api_livemode=False,
        ledger_tz=MX,
    )
    async with running_console(console_settings) as url:
        yield url


async def pulled(store: Store, fake: tuple[FakeConekta, str], model: ConektaAccount) -> None:
    conekta, url = fake
    conekta.transactions, conekta.transfers = model.transactions, model.transfers
    conekta.balance = model.balance()
    async with ConektaApi.open(url, conekta.key) as api:
        await pulling.pull(store, api, False)


async def get(url: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url + path, headers=basic(VIEWER)) as r:
        return r.status, await r.json()


async def test_a_viewer_sees_the_day_before_and_after_the_match(
    viewer_console: str, store: Store, fake: tuple[FakeConekta, str]
) -> None:
    model = ConektaAccount(livemode=False)
    transfer = day(model)
    for body in webhooks():
        await store.apply.batch([Incoming(parse_order_event(body), body, None)])
    await pulled(store, fake, model)
    statement = (
        "date,amount,reference,description\n"
        "2026-11-11,1500.00,RENT NOV,rent\n"
        "2026-11-12,474.40,SPEI CONEKTA 4401234,Conekta payout\n"
    )
    await settlement.import_statement(
        store, statement.encode(), "bank.csv", "bbva", currency="MXN", actor="test"
    )
    sent, landed = f"payout:{transfer['id']}:sent", f"payout:{transfer['id']}:landed"

    code, state = await get(viewer_console, "/api/v1/settlement")
    assert code == 200, state
    assert state["mode"] == "test" and state["time_zone"] == "America/Mexico_City"
    [shown] = state["transfers"]
    assert shown["transfer"] == transfer["id"] and shown["amount"] == 47_440
    assert (shown["status"], shown["bank_date"]) == ("landed", "2026-11-12")
    assert shown["statement_reference"] == "4401234" and shown["to_post"] == [sent, landed]
    to_post = {p["business_key"] for p in state["to_post"]}
    assert {"fee:ord_A:ch_A", sent, landed} <= to_post and len(to_post) == 5
    by_type = {i["type"]: i for i in state["items"]}
    assert by_type["rounding_adjustment"]["state"] == "review"
    assert by_type["capture"]["to_post"] == ["fee:ord_A:ch_A"]
    assert not state["invariants"]["ok"]
    checks = {c["invariant"]: c for c in state["invariants"]["checks"]}
    assert [checks[n]["ok"] for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert any("rounding_adjustment" in what for what in checks[2]["broken"])
    [balance] = state["balances"]
    assert (balance["currency"], balance["ledger"], balance["conekta"]) == ("MXN", 125_904, 59_004)

    # The report: as `settle report --json` (ops.settlement_report, the CLI's).
    code, report = await get(viewer_console, "/api/v1/settlement/report?month=2026-11")
    assert code == 200, report
    expected = await settlement_report.report(
        store, date(2026, 11, 1), tz=MX, tax_rate=TAX, now=datetime.now(UTC)
    )
    assert report["transfers"] == expected["transfers"]
    assert [u["id"] for u in report["unmatched"]] == [u["id"] for u in expected["unmatched"]]
    [paid] = report["transfers"]
    assert (paid["amount"], paid["difference"], paid["charges"]) == (47_440, 0, 120_000)
    code, in_utc = await get(viewer_console, "/api/v1/settlement/report?month=2026-11&tz=UTC")
    assert code == 200 and in_utc["time_zone"] == "UTC"
    assert in_utc["transfers"][0]["created_at"] == "2026-11-11T00:00:00+00:00"
    code, october = await get(viewer_console, "/api/v1/settlement/report?month=2026-10")
    assert code == 200 and october["transfers"] == []
    for query, field in (
        ("month=2026-13", "month"),
        ("month=nov", "month"),
        ("tz=Mars/Base", "tz"),
    ):
        code, error = await get(viewer_console, f"/api/v1/settlement/report?{query}")
        assert code == 400 and error["error"].startswith(f"{field}: "), (query, error)
    code, error = await get(viewer_console, "/api/v1/settlement/report?tz=America")
    assert code == 400 and "zoneinfo" not in error["error"]  # no server path in the message

    async with browser_like() as http:
        assert (await log_in(http, viewer_console, VIEWER)).status == 303
        async with http.get(f"{viewer_console}/settlement?month=2026-11") as r:
            assert r.status == 200
            page = await r.text()
        async with http.get(f"{viewer_console}/settlement?month=2026-99") as r:
            assert r.status == 400 and "month: " in await r.text()
    assert 'href="/settlement" aria-current="page"' in page
    assert "settle match --apply" in page and "posts nothing" in page
    assert 'id="invariants-broken"' in page and '<ul class="bad">' in page
    assert transfer["id"] in page and "landed 2026-11-12" in page
    assert "474.40 MXN" in page and "rounding_adjustment" in page and "fee:ord_A:ch_A" in page
    assert 'name="month" value="2026-11"' in page and "a transfer paid the transactions" in page
    assert '<form method="post"' not in page.split("</header>", 1)[1]  # no actions

    # The on-call person posts; the console then shows it all settled.
    await settlement.match(store, apply=True, tax_rate=TAX, tz=MX)
    code, state = await get(viewer_console, "/api/v1/settlement")
    assert code == 200 and state["invariants"]["ok"] and state["to_post"] == []
    assert state["transfers"][0]["status"] == "landed" and state["transfers"][0]["to_post"] == []
    assert [(i["type"], i["to_post"]) for i in state["items"]] == [("rounding_adjustment", [])]
    assert state["balances"][0]["ledger"] == state["balances"][0]["conekta"] == 59_004
    async with browser_like() as http:
        await log_in(http, viewer_console, VIEWER)
        async with http.get(f"{viewer_console}/settlement") as r:
            page = await r.text()
    assert 'id="invariants-ok"' in page and "Nothing to post." in page


async def test_a_transfer_is_sent_then_in_transit_for_its_business_days(
    viewer_console: str, store: Store, fake: tuple[FakeConekta, str]
) -> None:
    model = ConektaAccount(livemode=False)
    model.capture("ch_A", 50_000, 2_059, T0)
    transfer = model.payout(T0 + HOUR, "4401234")
    assert transfer is not None
    body = webhooks()[0]
    await store.apply.batch([Incoming(parse_order_event(body), body, None)])
    await pulled(store, fake, model)
    today = datetime.now(MX).date()
    waited = payouts.business_days_between(date(2026, 11, 10), today)

    code, state = await get(viewer_console, "/api/v1/settlement")
    assert code == 200
    [shown] = state["transfers"]
    assert (shown["status"], shown["business_days"], shown["bank_date"]) == ("sent", waited, None)
    await settlement.match(store, apply=True, tax_rate=TAX, tz=MX)
    code, state = await get(viewer_console, "/api/v1/settlement")
    [shown] = state["transfers"]
    assert (shown["status"], shown["business_days"], shown["to_post"]) == ("in_transit", waited, [])
    assert all(
        c["ok"] for c in state["invariants"]["checks"] if c["invariant"] == 3
    )  # no statement

    async with browser_like() as http:
        await log_in(http, viewer_console, VIEWER)
        async with http.get(f"{viewer_console}/settlement") as r:
            page = await r.text()
    assert f"in transit for {waited} business days" in page
