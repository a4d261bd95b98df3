"""Settlement end to end (issue 23's "done when"): a day of one merchant with the fake Conekta API
(driven by testkit's independent model of Conekta's balance), webhooks applied to the ledger, a
bank statement, then `settle pull`, `bank import`, `settle verify`, `settle match --apply` and
`settle report` as the on-call person runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from prometheus_client import REGISTRY

from core.settings import Settings
from domain.order_event import parse_order_event
from domain.plan import Incoming
from store import Store
from testkit.events import chargeback_event, order_event
from testkit.fake_conekta import FakeConekta, running
from testkit.processes import cli
from testkit.settlement_model import ConektaAccount
from tests.integration.test_least_privilege import as_role, logins
from worker import settlement as pulling
from worker.conekta_api import ConektaApi

pytestmark = pytest.mark.integration
__all__ = ["logins"]  # the fixture: a login in each runtime role

MX = ZoneInfo("America/Mexico_City")
T0 = int(datetime(2026, 11, 10, 9, 0, tzinfo=MX).timestamp())  # a Tuesday, 09:00 in Mexico City
HOUR = 3600


def day(conekta: ConektaAccount) -> dict[str, Any]:
    """The day, on Conekta's side; returns the transfer."""
    conekta.capture("ch_A", 50_000, 2_059, T0)  # its webhook carried no fee
    conekta.capture("ch_B", 30_000, 1_360, T0 + HOUR)
    conekta.capture("ch_C", 40_000, 1_740, T0 + 2 * HOUR)
    conekta.refund("ch_B", 10_000, T0 + 3 * HOUR)
    conekta.chargeback("ch_C", 40_000, 17_400, T0 + 4 * HOUR)  # with a dispute fee
    conekta.adjust("rounding_adjustment", -1, T0 + 5 * HOUR)
    transfer = conekta.payout(T0 + 9 * HOUR, "4401234")  # 18:00: the net of the day
    assert transfer is not None
    conekta.capture("ch_D", 20_000, 996, T0 + 10 * HOUR, pending=True)  # still pending
    return transfer


def webhooks() -> list[bytes]:
    """What the merchant's webhooks brought (test mode, as the model)."""
    return [
        order_event("order.paid", "ord_A", charge_id="ch_A", amount=50_000, fee=None,
                    created_at=T0),
        order_event("order.paid", "ord_B", charge_id="ch_B", amount=30_000, fee=1_360,
                    created_at=T0 + HOUR),
        order_event("order.paid", "ord_C", charge_id="ch_C", amount=40_000, fee=1_740,
                    created_at=T0 + 2 * HOUR),
        order_event("order.partially_refunded", "ord_B", charge_id="ch_B", amount=30_000,
                    fee=1_360, refunds=(("rfd_B1", 10_000, T0 + 3 * HOUR),),
                    created_at=T0 + 3 * HOUR),
        chargeback_event("charge.chargeback.created", "chbk_C", charge_id="ch_C",
                         created_at=T0 + 4 * HOUR, opened_at=T0 + 4 * HOUR),
        order_event("order.paid", "ord_D", charge_id="ch_D", amount=20_000, fee=996,
                    created_at=T0 + 10 * HOUR),
    ]  # fmt: skip


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeConekta, str]]:
    conekta = FakeConekta(max_limit=3)  # small pages: the pull pages
    async with running(conekta) as url:
        yield conekta, url


@pytest.fixture
def api_settings(
    settings: Settings,
    fake: tuple[FakeConekta, str],
    monkeypatch: pytest.MonkeyPatch,
    logins: dict[str, str],
) -> Settings:
    """The on-call person's CLI: logged in as a member of conekta_oncall (grants.sql)."""
    monkeypatch.setenv("CONEKTA_API_MODE", "test")
    monkeypatch.setenv("CONEKTA_LEDGER_TZ", "America/Mexico_City")
    return replace(
        settings,
        database_url=as_role(settings.database_url, logins["conekta_oncall"]),
        conekta_api_url=fake[1],
        conekta_api_key=fake[0].key,
    )


async def balance(store: Store, account: str) -> int:
    rows = await store.ledger.balances(at=None, livemode=False)
    return sum(r["balance"] for r in rows if r["account"] == account)


async def settle(settings: Settings, *args: str) -> tuple[int, Any]:
    code, output = await cli(settings, *args, "--json")
    return code, orjson.loads(output) if output.strip().startswith("{") else output


async def test_a_day_settles_to_conekta_and_the_bank(
    api_settings: Settings, fake: tuple[FakeConekta, str], store: Store, tmp_path: Path
) -> None:
    conekta, _ = fake
    model = ConektaAccount(livemode=False)
    transfer = day(model)
    conekta.transactions, conekta.transfers = model.transactions, model.transfers
    conekta.balance = model.balance()
    for body in webhooks():
        await store.apply.batch([Incoming(parse_order_event(body), body, None)])
    statement = tmp_path / "bank-2026-11.csv"
    statement.write_text(
        "date,amount,reference,description\n"
        "2026-11-11,1500.00,RENT NOV,rent\n"
        f"2026-11-12,{transfer['amount'] / 100:.2f},SPEI CONEKTA 4401234,Conekta payout\n"
    )

    code, pulled = await settle(api_settings, "settle", "pull")
    assert code == 0, pulled
    assert pulled["new"] == {"transactions": 8, "transfers": 1}
    code, imported = await settle(
        api_settings, "bank", "import", str(statement), "--account", "bbva"
    )
    assert code == 0 and imported["lines"] == 2, imported
    code, again = await settle(api_settings, "bank", "import", str(statement), "--account", "bbva")
    assert code == 0 and again["imported"] is False  # once per file

    # Before matching: each unexplained item named.
    code, verified = await settle(api_settings, "settle", "verify")
    assert code == 1, verified
    broken = "\n".join(b["what"] for b in verified["broken"])
    assert {b["invariant"] for b in verified["broken"]} == {1, 2}
    for unexplained in ("capture", "chargeback", "rounding_adjustment", "payout"):
        assert unexplained in broken, broken

    code, matched = await settle(api_settings, "settle", "match", "--apply")
    assert code == 0, matched
    keys = {p["business_key"] for p in matched["postings"]}
    assert keys == {
        "fee:ord_A:ch_A",  # the webhook had no fee: the capture's
        next(k for k in keys if k.startswith("dispute_fee:")),
        next(k for k in keys if k.startswith("adjustment:")),
        f"payout:{transfer['id']}:sent",
        f"payout:{transfer['id']}:landed",
    }

    assert model.total() == 59_004
    held = await balance(store, "conekta:receivable") + await balance(store, "conekta:disputed")
    assert held == model.total()
    assert await balance(store, "conekta:in_transit") == 0
    assert await balance(store, "bank:bbva") == transfer["amount"] == 47_440
    assert await balance(store, "conekta:dispute_fees") == 17_400
    assert await balance(store, "conekta:adjustments") == 1
    code, verified = await settle(api_settings, "settle", "verify")
    assert code == 0, verified
    code, ledger_ok = await cli(api_settings, "ledger", "verify")
    assert code == 0, ledger_ok
    # The webhooks here were never signed (applied straight to the store): only settlement's
    # postings are asked about, each backed by its stored record.
    _, output = await cli(api_settings, "ledger", "verify", "--provenance", "--json")
    backed = orjson.loads(output)["provenance"]
    assert backed["counts"]["settlement"] == 5, backed

    code, second = await settle(api_settings, "settle", "match", "--apply")
    assert code == 0 and second["postings"] == []
    code, pulled_again = await settle(api_settings, "settle", "pull")
    assert code == 0 and pulled_again["new"] == {"transactions": 0, "transfers": 0}

    code, report = await settle(api_settings, "settle", "report", "--month", "2026-11")
    assert code == 0, report
    [paid] = report["transfers"]
    assert paid["amount"] == 47_440 and paid["difference"] == 0
    assert (paid["charges"], paid["refunds"], paid["chargebacks"]) == (120_000, -10_000, -57_400)
    assert (paid["fees"], paid["tax"], paid["adjustments"]) == (-4_447, -712, -1)
    assert paid["bank_date"] == "2026-11-12"
    assert [u["type"] for u in report["unmatched"]] == ["rounding_adjustment"]  # for review
    code, text = await cli(api_settings, "settle", "report", "--month", "2026-11", "--csv")
    assert code == 0
    assert text.splitlines()[1].startswith(f"{transfer['id']},2026-11-10T18:00:00-06:00,MXN,47440,")
    code, text = await cli(api_settings, "settle", "report", "--month", "2026-11")
    assert code == 0
    print(text)  # the closing note shows it


async def test_the_workers_scheduled_pull_runs_as_the_worker_role(
    settings: Settings, fake: tuple[FakeConekta, str], logins: dict[str, str]
) -> None:
    conekta, url = fake
    model = ConektaAccount(livemode=False)
    day(model)
    conekta.transactions, conekta.transfers = model.transactions, model.transfers
    conekta.balance = model.balance()
    worker_url = as_role(settings.database_url, logins["conekta_worker"])
    worker_settings = replace(settings, database_url=worker_url, conekta_api_livemode=False)
    async with (
        Store.open(worker_url) as store,
        ConektaApi.open(url, conekta.key, retry_base=0.01) as api,
    ):
        conekta.fail(503)  # retried, as every call of the API client
        assert await pulling._scheduled_run(store, api, worker_settings)
        assert await pulling._scheduled_run(store, api, worker_settings)  # nothing new
        assert len(await store.settlement.transactions(False)) == 8
        [snapshot] = [b for b in await store.settlement.last_balances() if not b["livemode"]]
        assert orjson.loads(snapshot["raw"])["retained"] == [{"amount": 40_000, "currency": "MXN"}]
    assert REGISTRY.get_sample_value("conekta_settle_runs_total", {"result": "ok"})
    # No webhook came: every Conekta record is unexplained (invariant 2) and the ledger holds
    # nothing of Conekta's 59 004 (invariant 1); no statement, so nothing is stuck in transit.
    assert REGISTRY.get_sample_value("conekta_settle_broken_invariants", {"invariant": "1"}) == 1
    assert REGISTRY.get_sample_value("conekta_settle_broken_invariants", {"invariant": "2"}) == 8
    assert REGISTRY.get_sample_value("conekta_settle_broken_invariants", {"invariant": "3"}) == 0


async def test_a_bad_statement_imports_nothing_and_a_stuck_transfer_breaks_verify(
    api_settings: Settings, fake: tuple[FakeConekta, str], store: Store, tmp_path: Path
) -> None:
    conekta, _ = fake
    model = ConektaAccount(livemode=False)
    model.capture("ch_A", 50_000, 2_059, T0)
    transfer = model.payout(T0 + HOUR, "4401234")
    assert transfer is not None
    conekta.transactions, conekta.transfers = model.transactions, model.transfers
    conekta.balance = model.balance()
    body = webhooks()[0]
    await store.apply.batch([Incoming(parse_order_event(body), body, None)])
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "date,amount,reference,description\n2026-11-12,10.00,A,a\n2026-13-01,1.00,B,b\n"
        "2026-11-13,12,C,c\n"
    )
    code, output = await cli(api_settings, "bank", "import", str(bad), "--account", "bbva")
    assert code == 2
    assert "line 3: date '2026-13-01'" in output and "line 4: amount '12'" in output
    assert await store.settlement.statements() == []  # nothing half-imported

    # The bank shows the transfer's reference with another amount, and the statement runs to
    # Wednesday 18th, past the transfer's third business day (Friday 13th).
    statement = tmp_path / "bank.csv"
    statement.write_text(
        "date,amount,reference,description\n"
        "2026-11-12,474.39,SPEI CONEKTA 4401234,Conekta payout\n"
        "2026-11-18,10.00,OTHER,other\n"
    )
    code, _ = await settle(api_settings, "bank", "import", str(statement), "--account", "bbva")
    assert code == 0
    assert (await settle(api_settings, "settle", "pull"))[0] == 0
    assert (await settle(api_settings, "settle", "match", "--apply"))[0] == 0
    code, verified = await settle(api_settings, "settle", "verify")
    assert code == 1
    assert {b["invariant"] for b in verified["broken"]} == {3, 4}, verified
    assert await balance(store, "conekta:in_transit") == transfer["amount"]


async def test_a_pull_pages_down_to_the_watermark_less_three_days(
    settings: Settings, fake: tuple[FakeConekta, str], store: Store
) -> None:
    conekta, url = fake  # pages of 3
    model = ConektaAccount(livemode=False)
    for day_number in range(12):  # one capture a day for 12 days
        model.capture(f"ch_{day_number}", 10_000, 500, T0 + day_number * 86_400)
    conekta.transactions, conekta.balance = model.transactions, model.balance()
    conekta.transactions.append({"id": "txn_bad", "amount": "10.00", "created_at": T0})
    async with ConektaApi.open(url, conekta.key) as api:
        first = await pulling.pull(store, api, False)
        assert first.new["transactions"] == 12 and first.pages == 5 + 1  # + the empty transfers
        assert [s["id"] for s in first.skipped] == ["txn_bad"]
        conekta.transactions.remove(conekta.transactions[-1])
        model.capture("ch_new", 10_000, 500, T0 + 12 * 86_400)
        conekta.requests.clear()
        second = await pulling.pull(store, api, False)
    # Newest first: the new one and the 3 days before the watermark (day 11) are read again,
    # the older pages are not.
    assert second.new["transactions"] == 1
    assert second.seen["transactions"] == 6  # two pages of 3: the second reaches past day 8
    assert sum(r.startswith("/transactions") for r in conekta.requests) == 2
    assert await store.settlement.watermark("transactions", False) == datetime.fromtimestamp(
        T0 + 12 * 86_400, ZoneInfo("UTC")
    )
