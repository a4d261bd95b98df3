"""What the CLI prints on call is true and readable (issue 27): an order unknown to both sides
said plainly, a reader that stops early (`stats | head`) ends it quietly, `orders show` in
words with its units, not Python reprs."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core.settings import Settings
from domain.order_event import parse_order_event
from domain.plan import Incoming
from store import Store
from testkit.events import chargeback_event, order_event
from testkit.fake_conekta import FakeConekta, running
from testkit.processes import cli, worker_env


@pytest.fixture
async def api_settings(settings: Settings) -> AsyncIterator[Settings]:
    conekta = FakeConekta()
    async with running(conekta) as url:
        yield replace(settings, conekta_api_url=url, conekta_api_key=conekta.key)


async def test_verify_says_an_order_is_unknown_to_both(api_settings: Settings) -> None:
    code, output = await cli(api_settings, "orders", "verify", "ord_doesnotexist")
    assert code == 1
    assert "ord_doesnotexist  unknown to both" in output
    assert "None" not in output


async def test_a_reader_that_stops_early_ends_the_command_quietly(settings: Settings) -> None:
    """`stats | head`: a pipe whose reader is gone before the first line is written (closed
    before the command starts: the same error every time, no race)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli",
            "stats",
            env=worker_env(settings),
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, err = await process.communicate()
    assert "Traceback" not in err.decode() and "BrokenPipeError" not in err.decode()
    assert process.returncode == 141  # as a shell tool killed by SIGPIPE


async def test_orders_show_prints_words_and_units(settings: Settings, store: Store) -> None:
    now = datetime.now(UTC)
    paid = order_event("order.paid", "ord_sh", charge_id="ch_sh", amount=20_000)
    opened = chargeback_event("charge.chargeback.created", "chbk_sh", charge_id="ch_sh")
    for body in (paid, opened):
        await store.apply.batch([Incoming(parse_order_event(body), body, now)])
    code, output = await cli(settings, "orders", "show", "ord_sh")
    assert code == 0, output
    assert "amount (cents)           20000 MXN" in output
    assert "mode                     test" in output
    assert "chbk_sh  open" in output and "20000 cents" in output
    assert "2023-11-14 16:13:20 CST" in output  # the ledger's zone, to the second
    for repr_like in ("[{", "{'", "True", "False", "None"):
        assert repr_like not in output, repr_like
