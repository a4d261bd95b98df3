"""Reference model through the real store: random histories of Conekta's money (payments with
and without fee, partial, full, pending and failed refunds, chargebacks along every status
path, both modes, several charges) applied by `store.apply.batch` in random arrival orders and
batchings, as the worker does (a batch failing on an unknown charge is applied one by one, the
event retried after the rest); every balance must be what the independent model
(testkit/money_model.py) says, and `ledger verify` must hold."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import UnknownCharge
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import ledger
from store import Store
from testkit.money_model import History, expected_balances, histories

_tags = itertools.count(1)

BALANCES = """
SELECT t.livemode, e.account, sum(e.amount)::bigint AS balance
FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE t.order_id = ANY($1::text[]) GROUP BY 1, 2
"""


async def deliver(
    store: Store, items: list[Incoming], arrival: Sequence[int], cuts: list[int]
) -> list[int]:
    """The indexes of `items` in the order the store applied them (redeliveries left out)."""
    queue = [(i, items[i]) for i in arrival]
    applied: list[int] = []
    sizes = iter([*cuts, *([1] * len(queue) * 4)])
    waiting: list[tuple[int, Incoming]] = []
    progressed = False
    while queue:
        size = next(sizes)
        batch, queue = queue[:size], queue[size:]
        try:
            await store.apply.batch([item for _, item in batch])
            applied += [i for i, _ in batch]
            progressed = True
        except UnknownCharge:
            for i, item in batch:
                try:
                    await store.apply.batch([item])
                    applied.append(i)
                    progressed = True
                except UnknownCharge:
                    waiting.append((i, item))
        if not queue and waiting and progressed:
            queue, waiting, progressed = waiting, [], False
    assert not waiting, "an event whose charge never got booked"
    return list(dict.fromkeys(applied))


async def check(url: str, history: History, arrival: Sequence[int], cuts: list[int]) -> None:
    items = [Incoming(parse_order_event(e.body), e.body, None) for e in history.events]
    rate = Decimal(history.tax_rate.numerator) / Decimal(history.tax_rate.denominator)
    async with Store.open(url, fee_tax_rate=rate) as store:
        applied = await deliver(store, items, arrival, cuts)
        async with store.pool.acquire() as connection:
            rows = await connection.fetch(BALANCES, [o.id for o in history.orders])
        actual = {(r["livemode"], r["account"]): r["balance"] for r in rows if r["balance"]}
        assert actual == expected_balances(history, applied)
        failed = [(c.description, rows) for c, rows in await ledger.verify(store) if rows]
        assert not failed


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_every_balance_matches_the_model_through_the_store(
    database_url: str, data: st.DataObject
) -> None:
    tag = next(_tags)
    history = data.draw(histories(tag=f"m{tag}", first_id=tag * 1_000_000))
    n = len(history.events)
    redelivered = data.draw(st.lists(st.integers(0, n - 1), max_size=3))
    arrival = data.draw(st.permutations([*range(n), *redelivered]))
    cuts = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=len(arrival)))
    # Its own event loop, in a thread: the test session's loop is not running here.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, check(database_url, history, arrival, cuts)).result()
