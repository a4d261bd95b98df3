"""Reference model: random histories of Conekta's money (payments with and without fee, partial,
full, pending and failed refunds, chargebacks along every status path, both modes, several
charges) in random arrival orders and batchings through plan_batch; every balance must be the
one an independent model of Conekta's money says (testkit/money_model.py, which imports nothing
from domain/)."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.order_event import parse_order_event
from domain.plan import Incoming
from testkit import money_model
from testkit.ledger_sim import MemoryStore, deliver
from testkit.money_model import History, expected_balances, histories


def balances(store: MemoryStore) -> dict[tuple[bool, str], int]:
    totals: dict[tuple[bool, str], int] = {}
    for posting in store.postings.values():
        for entry in posting.entries:
            key = (posting.livemode, entry.account)
            totals[key] = totals.get(key, 0) + entry.amount
    return {k: v for k, v in totals.items() if v}


def first_applied(store: MemoryStore, history: History, items: list[Incoming]) -> list[int]:
    index = {item.event_id: i for i, item in enumerate(items)}
    return [index[event_id] for event_id in store.outcomes]


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_every_balance_matches_the_model(history: History, data: st.DataObject) -> None:
    items = [Incoming(parse_order_event(e.body), e.body, None) for e in history.events]
    n = len(items)
    redelivered = data.draw(st.lists(st.integers(0, n - 1), max_size=3))
    arrival = data.draw(st.permutations([*range(n), *redelivered]))
    cuts = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=len(arrival)))
    rate = Decimal(history.tax_rate.numerator) / Decimal(history.tax_rate.denominator)
    store = deliver(items, arrival, cuts, rate)
    assert not store.dead
    assert balances(store) == expected_balances(history, first_applied(store, history, items))
    for order in history.orders:
        for charge in order.charges:
            if charge.chargeback is not None:
                row = store.chargebacks[(order.livemode, charge.chargeback.id)]
                assert row.conekta_status == money_model.final_chargeback_status(charge.chargeback)


def test_the_model_is_independent_of_the_domain() -> None:
    tree = ast.parse(Path(money_model.__file__).read_text())
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {name for name in imported if name.startswith(("domain", "worker", "store"))}
