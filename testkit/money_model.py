"""Random histories of Conekta's money and an independent model of where every cent ends up.

For the reference model tests (tests/unit/test_money_model.py through plan_batch,
tests/integration/test_money_model.py through the worker's store). The model is written from
Conekta's side, not from the ledger's code: it imports nothing from domain/ (a test checks it),
and says per mode and account what the balances must be once every event has arrived, in any
order and batching:

- a paid charge of A: receivable +A, the customer of the first event that booked it -A;
- its fee F, once any event carried it: receivable -F, conekta:fees +commission, tax:vat_on_fees
  +(F - commission), commission = F / (1 + rate) rounded half up;
- a refund whose last status (pending -> moved -> failed) is moved: customer +R, receivable -R;
- a chargeback: its status is the one of its latest event (created_at, then event id); its
  target the charge less the moved refunds created before it (at least 0); withheld statuses
  keep it in conekta:disputed, won and covered return it, lost gives it to the customer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import floor
from typing import Any

import orjson
from hypothesis import strategies as st

from testkit.events import charge_document, chargeback_event, order_event_document, refund_document

MOVED, PENDING, FAILED = "moved", "pending", "failed"
REFUND_PATHS = [
    (MOVED,),
    (PENDING, MOVED),
    (PENDING, FAILED),
    (FAILED,),
    (MOVED, FAILED),
    (PENDING,),
]
FAILED_WORDS = ["failed", "canceled", "expired", "rejected"]
CHARGEBACK_STATUSES = [
    "pending",
    "action_required",
    "rt",
    "rt_sent",
    "represented",
    "pending_review",
    "under_review",
    "won",
    "covered",
    "lost",
]
RETURNED = frozenset({"won", "covered"})
GIVEN_BACK = frozenset({"lost"})
CUSTOMERS = [("cus_a", None), (None, "Buyer@Example.com"), ("cus_b", None)]


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    created_at: int
    path: tuple[str, ...]  # its states, in Conekta's order; the last is where it ends
    words: tuple[str | None, ...]  # the status field each step carries


@dataclass(frozen=True)
class Chargeback:
    id: str
    opened_at: int
    # (status, event created_at, event id); None: an update that says no status
    steps: tuple[tuple[str | None, int, str], ...]


@dataclass(frozen=True)
class Charge:
    id: str
    amount: int
    fee: int
    refunds: tuple[Refund, ...]
    chargeback: Chargeback | None


@dataclass(frozen=True)
class Order:
    id: str
    livemode: bool
    amount: int
    charges: tuple[Charge, ...]


@dataclass(frozen=True)
class Event:
    body: bytes
    order_id: str
    customer: str | None  # the customer key an order event carries; None: a charge event
    fee_charges: frozenset[str]  # charges whose fee it carries


@dataclass(frozen=True)
class History:
    orders: tuple[Order, ...]
    events: tuple[Event, ...]
    tax_rate: Fraction


class _Ids:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def event(self, at: int) -> str:
        self.n += 1
        return f"{at:08x}{self.n:016x}"


def customer_key(customer_id: str | None, email: str | None) -> str:
    return customer_id or (email or "").lower()


@st.composite
def histories(
    draw: st.DrawFn, tax_rate: Fraction = Fraction(16, 100), tag: str = "", first_id: int = 0
) -> History:
    """`tag` goes into every order, charge, refund and chargeback id, and event ids count from
    `first_id`: histories of different tags can share one database."""
    ids = _Ids(first_id)
    orders = []
    events: list[Event] = []
    previous = False
    for i in range(draw(st.integers(1, 4))):
        # Orders 2k and 2k+1 are in different modes and share their charge and refund ids
        # (test and live money must never meet); chargebacks keep theirs apart.
        livemode = draw(st.booleans()) if i % 2 == 0 else not previous
        previous = livemode
        mode = "l" if livemode else "t"
        n, shared = f"{tag}{i}", f"{tag}{i // 2}"
        charges = tuple(
            draw(_charges(f"ch_{shared}_{j}", f"re_{shared}_{j}_", f"chbk_{mode}{n}_{j}", ids))
            for j in range(draw(st.integers(1, 2)))
        )
        total = sum(c.amount for c in charges)
        amount = draw(st.sampled_from([total, charges[0].amount]))  # several cash references
        order = Order(f"ord_{mode}{n}", livemode, amount, charges)
        orders.append(order)
        events += draw(_order_events(order, ids))
    return History(tuple(orders), tuple(events), tax_rate)


@st.composite
def _charges(draw: st.DrawFn, charge_id: str, refund_prefix: str, chbk: str, ids: _Ids) -> Charge:
    amount = draw(st.integers(1, 50_000))
    fee = draw(st.integers(0, amount // 10))
    refunds = []
    left = amount
    for k in range(draw(st.integers(0, 3))):
        if left == 0:
            break
        cents = draw(st.integers(1, left))
        left -= cents
        path = draw(st.sampled_from(REFUND_PATHS))
        words = tuple(draw(_word(state)) for state in path)
        refunds.append(
            Refund(f"{refund_prefix}{k}", cents, draw(st.integers(110, 140)), path, words)
        )
    chargeback = None
    if draw(st.booleans()):
        opened = draw(st.integers(110, 140))
        steps: list[tuple[str | None, int, str]] = []
        for k in range(draw(st.integers(1, 3))):
            at = opened + draw(st.integers(0, 6))
            statuses = CHARGEBACK_STATUSES + ([None] if k else [])  # created always says one
            steps.append((draw(st.sampled_from(statuses)), at, ids.event(at)))
        chargeback = Chargeback(chbk, opened, tuple(steps))
    return Charge(charge_id, amount, fee, tuple(refunds), chargeback)


def _word(state: str) -> st.SearchStrategy[str | None]:
    if state == PENDING:
        return st.just("pending")
    if state == FAILED:
        return st.sampled_from(FAILED_WORDS)
    return st.sampled_from([None, "succeeded"])


@st.composite
def _order_events(draw: st.DrawFn, order: Order, ids: _Ids) -> list[Event]:
    events = []
    for _ in range(draw(st.integers(1, 2))):  # order.paid, with or without fees
        with_fee = frozenset(c.id for c in order.charges if draw(st.booleans()))
        customer = draw(st.sampled_from(CUSTOMERS))
        at = draw(st.integers(100, 108))
        body = _order_body(order, "order.paid", at, ids.event(at), customer, with_fee, {})
        events.append(Event(body, order.id, customer_key(*customer), with_fee))
    for charge in order.charges:
        for refund in charge.refunds:
            for step, word in enumerate(refund.words):
                at = refund.created_at + step
                carried = {charge.id: (refund_document(refund.id, refund.amount,
                                                        refund.created_at, word),)}  # fmt: skip
                if draw(st.booleans()):
                    customer = draw(st.sampled_from(CUSTOMERS))
                    event_type = "order.partially_refunded"
                    with_fee = frozenset(c.id for c in order.charges if draw(st.booleans()))
                    body = _order_body(order, event_type, at, ids.event(at), customer,
                                       with_fee, carried)  # fmt: skip
                    events.append(Event(body, order.id, customer_key(*customer), with_fee))
                else:
                    with_fee = frozenset([charge.id]) if draw(st.booleans()) else frozenset()
                    body = _charge_refunded(order, charge, at, ids.event(at), carried, with_fee)
                    events.append(Event(body, order.id, None, with_fee))
        if charge.chargeback is not None:
            events += [_chargeback(draw, order, charge, charge.chargeback, n) for n in range(
                len(charge.chargeback.steps))]  # fmt: skip
    return events


def _charge_doc(
    order: Order, charge: Charge, status: str, fee: bool, refunds: dict[str, Any]
) -> dict[str, Any]:
    document = charge_document(
        "order.paid", order.id, charge.id, charge.amount, charge.fee if fee else None,
        livemode=order.livemode,
    )  # fmt: skip
    document["status"] = status
    document["refunds"]["data"] = list(refunds.get(charge.id, ()))
    return document


def _order_body(
    order: Order,
    event_type: str,
    at: int,
    event_id: str,
    customer: tuple[str | None, str | None],
    with_fee: frozenset[str],
    refunds: dict[str, Any],
) -> bytes:
    document = order_event_document(
        event_type, order.id, event_id=event_id, created_at=at, amount=order.amount,
        customer_id=customer[0], email=customer[1], livemode=order.livemode,
    )  # fmt: skip
    status = "paid" if event_type == "order.paid" else "partially_refunded"
    document["data"]["object"]["charges"]["data"] = [
        _charge_doc(order, c, status, c.id in with_fee, refunds) for c in order.charges
    ]
    return orjson.dumps(document)


def _charge_refunded(
    order: Order,
    charge: Charge,
    at: int,
    event_id: str,
    refunds: dict[str, Any],
    with_fee: frozenset[str],
) -> bytes:
    document = _charge_doc(order, charge, "partially_refunded", charge.id in with_fee, refunds)
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "charge.refunded",
            "livemode": order.livemode,
            "created_at": at,
            "data": {"object": document, "previous_attributes": {}},
        }
    )


def _chargeback(draw: st.DrawFn, order: Order, charge: Charge, chbk: Chargeback, n: int) -> Event:
    status, at, event_id = chbk.steps[n]
    event_type = "charge.chargeback.created" if n == 0 else "charge.chargeback.updated"
    if n and status in {"won", "lost", "under_review"} and draw(st.booleans()):
        event_type = f"charge.chargeback.{status}"
    # status None: an update whose object's status ("updated") is none of Conekta's
    body = chargeback_event(
        event_type, chbk.id, charge_id=charge.id, event_id=event_id, created_at=at,
        opened_at=chbk.opened_at, livemode=order.livemode, status=status,
    )  # fmt: skip
    return Event(body, order.id, None, frozenset())


# -- the model ---------------------------------------------------------------------------------


def commission(fee: int, rate: Fraction) -> int:
    return floor(Fraction(fee) / (1 + rate) + Fraction(1, 2))


def expected_balances(history: History, arrival: Sequence[int]) -> dict[tuple[bool, str], int]:
    """Per (livemode, account): the balance, debit positive, zeros left out. `arrival`: the
    indexes of history.events in the order the ledger first saw them (the first order event
    carrying a charge books it, with its customer)."""
    money: Counter[tuple[bool, str]] = Counter()
    for order in history.orders:
        customers = [
            history.events[i].customer
            for i in arrival
            if history.events[i].order_id == order.id and history.events[i].customer
        ]
        customer = f"customer:{customers[0]}"  # fmt: skip
        for charge in order.charges:
            _charge_money(money, history, order, charge, customer)
    return {k: v for k, v in money.items() if v}


def _charge_money(
    money: Counter[tuple[bool, str]], history: History, order: Order, charge: Charge, customer: str
) -> None:
    mode = order.livemode
    receivable = (mode, "conekta:receivable")
    money[receivable] += charge.amount
    money[(mode, customer)] -= charge.amount
    if any(charge.id in e.fee_charges for e in history.events if e.order_id == order.id):
        part = commission(charge.fee, history.tax_rate)
        money[receivable] -= charge.fee
        money[(mode, "conekta:fees")] += part
        money[(mode, "tax:vat_on_fees")] += charge.fee - part
    moved = [r for r in charge.refunds if r.path[-1] == MOVED]
    for refund in moved:
        money[(mode, customer)] += refund.amount
        money[receivable] -= refund.amount
    if charge.chargeback is None:
        return
    chbk = charge.chargeback
    status = final_chargeback_status(chbk)
    before = sum(r.amount for r in moved if r.created_at < chbk.opened_at)
    target = max(0, charge.amount - before)
    if status in RETURNED:
        return
    money[receivable] -= target
    money[(mode, customer if status in GIVEN_BACK else "conekta:disputed")] += target


def final_chargeback_status(chbk: Chargeback) -> str:
    """Conekta's latest status: of the latest event that says one (created always does)."""
    said = [(at, event_id, status) for status, at, event_id in chbk.steps if status]
    return max(said)[2]
