"""What on-call reads is true (issue 27): an order's chargebacks, search by any customer key,
the event that last changed an order, amounts with their unit and times in the ledger's zone,
a dead letter's order, readable audit details and headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from core.settings import Settings
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import audit
from store import Store
from testkit.events import chargeback_event, order_event, order_event_document
from testkit.processes import cli
from testkit.services import OPERATOR, VIEWER, basic, put_dead_letter, running_worker
from testkit.wait import wait_for
from tests.integration.test_console import log_in


async def apply(store: Store, *bodies: bytes) -> None:
    now = datetime.now(UTC)
    await store.apply.batch([Incoming(parse_order_event(b), b, now) for b in bodies])


async def get_json(console: str, path: str, **params: str) -> Any:
    async with (
        aiohttp.ClientSession(headers=basic(VIEWER)) as http,
        http.get(f"{console}{path}", params=params) as r,
    ):
        assert r.status == 200, await r.text()
        return await r.json()


async def get_page(console: str, path: str) -> str:
    """A console page as a signed-in viewer sees it."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        response = await log_in(http, console, VIEWER)
        assert response.status == 303
        async with http.get(f"{console}{path}") as r:
            assert r.status == 200, await r.text()
            return await r.text()


async def test_an_order_lists_its_chargebacks_with_their_postings(
    console: str, store: Store
) -> None:
    await apply(store, order_event("order.paid", "ord_cb1", charge_id="ch_cb1", amount=20_000))
    await apply(store, chargeback_event("charge.chargeback.created", "chbk_1", charge_id="ch_cb1"))
    order = await get_json(console, "/api/v1/orders/ord_cb1")
    [chargeback] = order["chargebacks"]
    assert chargeback["id"] == "chbk_1" and chargeback["status"] == "open"
    assert chargeback["amount"] == 20_000 and chargeback["charge_id"] == "ch_cb1"
    assert [p["kind"] for p in chargeback["postings"]] == ["chargeback_opened"]
    page = await get_page(console, "/orders/ord_cb1")
    assert 'id="chargeback-count">1<' in page and "chbk_1" in page
    assert "200.00 MXN" in page  # amounts carry their unit


async def test_search_by_customer_id_email_or_name_of_any_event(console: str, store: Store) -> None:
    first = order_event_document(
        "order.pending_payment", "ord_s1", customer_id="cus_S1", email="Ana@Example.com"
    )
    first["data"]["object"]["customer_info"]["name"] = "Ana Pérez"
    # A later event names another e-mail (the customer changed it): both find the order.
    second = order_event_document(
        "order.paid",
        "ord_s1",
        customer_id="cus_S1",
        email="ana.p@example.mx",
        created_at=1_700_000_100,
    )
    await apply(store, orjson.dumps(first))
    await apply(store, orjson.dumps(second), order_event("order.paid", "ord_other"))
    for term in ("cus_S1", "ana@example.com", " ANA.P@example.mx ", "ana pérez"):
        events = await get_json(console, "/api/v1/events", customer=term)
        assert {e["order_id"] for e in events["items"]} == {"ord_s1"}, term
        orders = await get_json(console, "/api/v1/orders", customer=term)
        assert [o["id"] for o in orders["items"]] == ["ord_s1"], term
    assert (await get_json(console, "/api/v1/events", customer="nobody"))["items"] == []


async def test_last_change_names_the_applied_event_not_a_later_duplicate(
    console: str, store: Store
) -> None:
    paid = order_event("order.paid", "ord_lc", created_at=1_700_000_000)
    again = order_event("order.paid", "ord_lc", created_at=1_700_000_500)  # same status: duplicate
    await apply(store, paid)
    await apply(store, again)
    order = await get_json(console, "/api/v1/orders/ord_lc")
    assert {e["event_id"]: e["outcome"] for e in order["events"]} == {
        orjson.loads(paid)["id"]: "applied",
        orjson.loads(again)["id"]: "duplicate",
    }
    assert order["last_change"]["event_id"] == orjson.loads(paid)["id"]
    page = await get_page(console, "/orders/ord_lc")
    last = page.split('id="last-change">')[1].split("</dd>")[0]
    assert orjson.loads(paid)["id"] in last and orjson.loads(again)["id"] not in last
    # Times in the ledger's zone (America/Mexico_City by default), to the second:
    # 1_700_000_000 is 2023-11-14 22:13:20 UTC.
    assert "2023-11-14 16:13:20 CST" in last


async def test_a_dead_letters_order_link_leads_somewhere(console: str, store: Store) -> None:
    """An order the ledger never saw (its first event is the dead letter) is not linked as an
    order page that would say "no order with that id"; its events are."""
    unknown = await put_dead_letter(store, order_event("order.paid", "ord_never"))
    await apply(store, order_event("order.pending_payment", "ord_known"))
    known = await put_dead_letter(store, order_event("order.paid", "ord_known"))
    page = await get_page(console, f"/dead-letters/{unknown}")
    order = page.split('id="order">')[1].split("</dd>")[0]
    assert "/orders/ord_never" not in order and "/events?order_id=ord_never" in order
    page = await get_page(console, f"/dead-letters/{known}")
    assert 'href="/orders/ord_known"' in page.split('id="order">')[1].split("</dd>")[0]
    listing = await get_page(console, "/dead-letters")
    assert 'placeholder="permanent"' in listing  # a kind that exists


async def test_a_dead_letters_request_header_is_an_object(
    console: str, store: Store, db: Any
) -> None:
    body = order_event("order.paid", "ord_hdr")
    letter = await put_dead_letter(store, body)
    request = {"remote": "203.0.113.7", "headers": {"user-agent": "Conekta-Webhooks/2.2"}}
    await db.execute(
        "UPDATE dead_letters SET headers = headers || jsonb_build_object('request', $1::text)"
        " WHERE message_id = $2",
        orjson.dumps(request).decode(),
        letter,
    )
    shown = await get_json(console, f"/api/v1/dead-letters/{letter}")
    assert shown["headers"]["request"] == request
    page = await get_page(console, f"/dead-letters/{letter}")
    assert "&#34;remote&#34;: &#34;203.0.113.7&#34;" in page  # pretty-printed, not escaped text


async def test_audit_details_are_readable_lines(console: str, store: Store) -> None:
    details = {
        "target": "ord_x",
        "reason": "why not",
        "selection": {"ids": ["evt_1", "evt_2"], "type": None, "kind": None, "all": False},
        "ids": ["evt_1", "evt_2"],
    }
    await audit.record(store, "os:ana", "dlq.replay", 2, details)
    page = await get_page(console, "/audit")
    assert "ids:</span> evt_1, evt_2" in page
    assert "selection:</span> ids=evt_1 evt_2" in page
    assert "{" not in page.split('id="audit"')[1].split("</table>")[0]  # no raw JSON


async def test_replay_waits_and_says_what_came_of_each(
    console: str, settings: Settings, store: Store, broker: Any
) -> None:
    """A replay whose cause is not fixed is said to have gone back, in the API and the CLI
    (exit 1); one that applies says `applied`. The replay itself waits (a bounded poll of the
    archive and the dead letters): the test only awaits its answer."""
    good = await put_dead_letter(store, order_event("order.paid", "ord_rw1"))
    unfixed = order_event("order.paid", "ord_rw2", amount=1_000, fee=2_000)  # fee > amount
    bad = await put_dead_letter(store, unfixed, kind="permanent")
    async with running_worker(settings), aiohttp.ClientSession(headers=basic(OPERATOR)) as http:
        async with http.post(
            f"{console}/api/v1/dead-letters/replay", json={"ids": [good, bad]}
        ) as r:
            assert r.status == 200, await r.text()
            result = await r.json()
        assert result["outcomes"][good] == "applied"
        assert result["outcomes"][bad] == (
            "dead-lettered again: permanent: UnapplicableEvent: charge ch_ord_rw2 fee 2000"
            " exceeds its amount"
        )
        assert result["went_back"] == [bad] and result["pending"] == []
        job_page = await replay_from_the_console(console, bad)
        assert "0 settled, 1 dead-lettered again" in job_page
        assert "dead-lettered again: permanent: UnapplicableEvent" in job_page
        code, output = await cli(settings, "dlq", "replay", bad)
        assert code == 1, output
        assert f"{bad}  dead-lettered again: permanent: UnapplicableEvent" in output
        assert "1 dead-lettered again" in output
        code, output = await cli(settings, "dlq", "replay", "--type", "order.paid", "--json")
        assert code == 1
        report = "\n".join(line for line in output.splitlines() if not line.startswith("..."))
        assert orjson.loads(report)["went_back"] == [bad]  # (stderr's progress lines left out)
    code, output = await cli(settings, "dlq", "replay", bad, "--no-wait")
    assert code == 0 and "replayed 1 dead letter(s)" in output  # no worker: nothing known yet


async def test_the_ledger_pages_entries_follow_the_as_of_date(console: str, store: Store) -> None:
    """Balances as of a date and the entries under them agree: the payment (2020-09-13) is
    listed as of 2021, its refund (2023-11-14) only after."""
    refunded = order_event(
        "order.partially_refunded",
        "ord_asof",
        amount=20_000,
        fee=500,
        refunds=(("rf_asof", 5_000, 1_700_000_000),),
    )
    await apply(store, refunded)
    page = await get_page(console, "/ledger?as_of=2021-01-01")
    entries = page.split("<h2>Entries")[1]
    assert "payment:ord_asof" in entries and "refund:ord_asof" not in entries
    assert "200.00 MXN" in page.split("<h2>Entries")[0]  # the customer's balance, with its unit
    everything = (await get_page(console, "/ledger")).split("<h2>Entries")[1]
    assert "refund:ord_asof" in everything


async def replay_from_the_console(console: str, letter: str) -> str:
    """Replay one dead letter from its page's form (operator) and follow the job to its end;
    the finished job page."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        assert (await log_in(http, console, OPERATOR)).status == 303
        async with http.get(f"{console}/dead-letters/{letter}") as r:
            token = (await r.text()).split('name="csrf_token" value="')[1].split('"')[0]
        form = {"csrf_token": token, "id": letter, "step": "run"}
        async with http.post(
            f"{console}/dead-letters/replay", data=form, allow_redirects=False
        ) as r:
            assert r.status == 303, await r.text()
            job = r.headers["Location"]
        page = ""

        async def finished() -> bool:
            nonlocal page
            async with http.get(f"{console}{job}") as r:
                page = await r.text()
            return 'id="job-state" class="">finished' in page or "failed" in page

        await wait_for(finished, timeout=45, what="the replay job")  # it waits for the worker
        return page
