"""The console's pages in a real headless browser (Debian's chromium through chromedriver and
selenium): log in, find an event by the customer's e-mail, look at its order and the ledger,
replay a dead letter and see it applied, preview a replay of invalid events, read the audit
trail, and a viewer refused. Each page
is saved as a screenshot (build/console-screenshots/, or CONEKTA_SCREENSHOTS=docs/console to
refresh the README's)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from console import users
from core import request
from core.settings import Settings
from domain.archive import ArchiveRow
from domain.order_event import parse_order_event
from domain.plan import Incoming
from store import Store
from testkit import signing
from testkit.events import chargeback_event, order_event, order_event_document
from testkit.services import OPERATOR, VIEWER, put_dead_letter, running_console, running_worker
from worker import judge

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CONEKTA_SCREENSHOTS", ROOT / "build" / "console-screenshots"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@contextmanager
def chromium(width: int = 1366, height: int = 768) -> Iterator[WebDriver]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        message = "chromium and chromium-driver are needed: scripts/ensure_browser"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="conekta-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """A browser on the console, with the few gestures the tests need."""

    def __init__(self, driver: WebDriver, url: str) -> None:
        self.driver, self.url = driver, url

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def log_in(self, user: tuple[str, str]) -> None:
        self.open("/login")
        self.driver.find_element(By.ID, "user").send_keys(user[0])
        self.driver.find_element(By.ID, "password").send_keys(user[1])
        self.driver.find_element(By.ID, "login").click()
        self.wait(lambda: "/login" not in self.driver.current_url, "logged in")

    def click(self, by: str, value: str) -> None:
        self.driver.find_element(by, value).click()

    def text(self) -> str:
        try:
            return str(self.driver.find_element(By.TAG_NAME, "body").text)
        except StaleElementReferenceException:  # the page changed under us: read it again
            return ""
        except WebDriverException as exc:
            # Chromium sometimes reports the same race as an inspector error instead.
            if "does not belong to the document" in str(exc):
                return ""
            raise

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            lambda _: condition(), message=f"waiting for {what}"
        )

    def shot(self, name: str) -> None:
        """Save the page (whole, up to 2400 px high), after checking that it fits its width."""
        self.check_fits(name)
        SHOTS.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_script("return document.body.scrollHeight")
        width = self.driver.get_window_size()["width"]
        self.driver.set_window_size(width, min(max(int(height) + 120, 600), 2400))
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))

    def check_fits(self, name: str) -> None:
        """No horizontal overflow of the page; on a desktop (over 1000 px) no table or card
        cut off either (its own scroll bar hides columns); on a phone tables may scroll."""
        page = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert page[0] <= page[1], f"{name}: the page is {page[0]} px wide in {page[1]} px"
        if page[1] > 1000:
            cut = self.driver.execute_script(
                """return [...document.querySelectorAll('.scroll, .card, pre:not(.body)')]
                    .filter(e => e.scrollWidth > e.clientWidth + 1)
                    .map(e => e.className + ' ' + e.scrollWidth + '>' + e.clientWidth)"""
            )
            assert not cut, f"{name}: cut off at {page[1]} px: {cut}"


async def seed(store: Store) -> str:
    """Users, and paid, pending and declined orders; returns the pending order's event id."""
    now = datetime.now(UTC)
    bodies = [
        order_event(
            "order.pending_payment",
            "ord_2su3ENUy",
            email="Ana@Example.com",
            customer_id=None,
            amount=20_000,
            fee=796,
            created_at=1_764_200_000,
        ),
        order_event(
            "order.paid",
            "ord_7hq2LmZt",
            customer_id="cus_2ss5YAeT",
            amount=45_900,
            fee=1_650,
            created_at=1_764_201_000,
        ),
        order_event(
            "order.declined",
            "ord_9kd3Vb",
            customer_id="cus_8ajd2",
            amount=9_900,
            created_at=1_764_202_000,
        ),
    ]
    # As the receiver records it (the signature shortened: the page shows what came, not a key).
    sent = request.select(
        "203.0.113.7",
        [
            ("Content-Type", "application/json"),
            ("User-Agent", "Conekta-Webhooks/2.2"),
            ("Digest", "jY7bXq2...kL0="),
            ("X-Forwarded-For", "203.0.113.7"),
            ("Authorization", "Bearer never-stored"),
        ],
    )
    await store.apply.batch([Incoming(parse_order_event(b), b, now, sent) for b in bodies])
    # A chargeback on the paid order, opened after its payment was booked.
    disputed = chargeback_event(
        "charge.chargeback.created",
        "chbk_7hq2",
        charge_id="ch_ord_7hq2LmZt",
        created_at=1_764_201_500,
    )
    await store.apply.batch([Incoming(parse_order_event(disputed), disputed, now, sent)])
    await users.add_user(store, OPERATOR[0], "operator", OPERATOR[1], "test")
    await users.add_user(store, VIEWER[0], "viewer", VIEWER[1], "test")
    await seed_invalid(store)
    return str(orjson.loads(bodies[0])["id"])


async def seed_invalid(store: Store) -> None:
    """Two invalid events: one refused by a rule since fixed, one junk."""
    fixed = order_event(
        "order.paid", "ord_4fj8Qx", customer_id="cus_4fj8", created_at=1_764_204_000
    )
    junk = order_event_document("order.paid", "ord_5hs1Kp", created_at=1_764_205_000)
    junk["data"]["object"]["amount"] = "199.00"
    refused = judge.invalid_row(fixed, None, "data.object.customer_info: required")
    judged = judge.judged_row(orjson.dumps(junk), datetime.now(UTC))
    assert isinstance(judged, ArchiveRow)
    await store.events.archive(
        [replace(row, request=signing.signed_request(row.body)) for row in (refused, judged)]
    )


def operator_session(page: Page, pending_id: str, dead_id: str) -> None:
    page.open("/events")
    page.wait(lambda: "/login" in page.driver.current_url, "the login form")
    page.shot("login")
    page.log_in(OPERATOR)
    page.wait(lambda: "Events, last 24 h" in page.text(), "the overview")
    page.shot("overview")

    page.open("/events")
    page.driver.find_element(By.ID, "customer").send_keys("ana@example.com")
    page.click(By.ID, "search")
    page.wait(lambda: pending_id in page.text(), "the customer's event")
    page.shot("events")
    page.click(By.LINK_TEXT, pending_id)
    page.wait(lambda: "Raw body" in page.text(), "the event page")
    page.shot("event")
    page.click(By.LINK_TEXT, "ord_2su3ENUy")
    page.wait(lambda: "Timeline" in page.text(), "the order page")

    page.open("/ledger")
    page.wait(lambda: "conekta:receivable" in page.text(), "the balances")
    page.shot("ledger")

    page.open("/dead-letters")
    page.wait(lambda: dead_id in page.text(), "the dead letter")
    page.shot("dead-letters")
    page.click(By.LINK_TEXT, dead_id)
    page.click(By.ID, "replay-one")
    page.wait(lambda: "Dry run" in page.text(), "the dry-run preview")
    page.shot("replay-preview")
    page.click(By.ID, "confirm")
    # The job waits for the worker's verdict on what it replayed, and says it per event.
    page.wait(lambda: "1 settled, 0 dead-lettered again" in page.text(), "the replay's outcome")
    assert f"{dead_id}\napplied" in page.text() or f"{dead_id} applied" in page.text()
    page.shot("replay-done")
    page.open("/orders/ord_2su3ENUy")
    assert page.driver.find_element(By.ID, "status").text == "paid"
    assert page.driver.find_element(By.ID, "amount").text == "200.00 MXN"
    page.shot("order")
    page.open("/orders/ord_7hq2LmZt")
    page.wait(lambda: "chbk_7hq2" in page.text(), "the order's chargeback")
    assert page.driver.find_element(By.ID, "chargeback-count").text == "1"
    page.shot("order-chargeback")
    page.open("/invalid-events")
    page.wait(lambda: "customer_info: required" in page.text(), "the invalid events")
    page.shot("invalid-events")
    for box in page.driver.find_elements(By.NAME, "id"):
        box.click()
    page.click(By.ID, "replay-selected")
    page.wait(lambda: "applied as order.paid for ord_4fj8Qx" in page.text(), "the verdicts")
    page.shot("invalid-preview")

    page.open("/audit")
    page.wait(lambda: "dlq.replay" in page.text() and "oscar" in page.text(), "the audit entry")
    page.shot("audit")


def viewer_session(page: Page, dead_id: str) -> None:
    page.log_in(VIEWER)
    page.open("/dead-letters")
    page.wait(lambda: "Dead letters" in page.text(), "the dead letters page")
    assert not page.driver.find_elements(By.ID, "replay-selected")  # no buttons for a viewer
    # Forge the operator's form with the viewer's own session and CSRF token: refused.
    page.driver.execute_script(
        """const token = document.querySelector('input[name=csrf_token]').value;
        const form = document.createElement('form');
        form.method = 'post'; form.action = '/dead-letters/replay';
        for (const [k, v] of [['csrf_token', token], ['all', 'yes']]) {
            const input = document.createElement('input');
            input.type = 'hidden'; input.name = k; input.value = v; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();"""
    )
    page.wait(lambda: "is a viewer" in page.text(), "the refusal")
    page.shot("viewer-refused")


PHONE_PAGES = {  # the pages on call opens on a phone: each must fit 390 px
    "overview-phone": "/",
    "events-phone": "/events?customer=ana%40example.com",
    "order-phone": "/orders/ord_7hq2LmZt",
    "ledger-phone": "/ledger",
    "settlement-phone": "/settlement",
    "dead-letters-phone": "/dead-letters",
    "invalid-events-phone": "/invalid-events",
    "audit-phone": "/audit",
}


def phone_pages(page: Page) -> None:
    page.log_in(OPERATOR)
    page.wait(lambda: "Events, last 24 h" in page.text(), "the overview")
    for name, path in PHONE_PAGES.items():
        page.open(path)
        page.shot(name)


async def test_the_console_in_a_browser(settings: Settings, store: Store, broker: Any) -> None:
    pending_id = await seed(store)
    # The order's payment, dead-lettered after a failure that has since been fixed.
    paid = order_event(
        "order.paid",
        "ord_2su3ENUy",
        email="Ana@Example.com",
        customer_id=None,
        amount=20_000,
        fee=796,
        created_at=1_764_203_000,
    )
    dead_id = await put_dead_letter(store, paid, reason="simulated: deadlock on balances")
    async with running_console(settings) as url, running_worker(settings):

        def operator() -> None:
            with chromium() as driver:
                operator_session(Page(driver, url), pending_id, dead_id)

        def viewer() -> None:
            with chromium() as driver:
                viewer_session(Page(driver, url), dead_id)

        def phone() -> None:
            with chromium(390, 844) as driver:
                phone_pages(Page(driver, url))

        # Selenium blocks: it runs in threads while the console and the worker run here.
        await asyncio.to_thread(operator)
        await asyncio.to_thread(viewer)
        await asyncio.to_thread(phone)
