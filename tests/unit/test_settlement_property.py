"""Settlement against an independent model of Conekta's balance (testkit/settlement_model.py):
whatever the order in which webhooks, pages of Conekta's records and bank lines arrive, and
however often `settle match` runs in between, the ledger ends holding what Conekta holds,
nothing stays in transit once the bank shows every transfer, and a last run posts nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import chargeback as chargeback_rules
from domain import ledger
from domain import settlement as rules
from domain.ledger import RECEIVABLE, Entry, Posting
from domain.money_rows import ChargebackRow, ChargebackState
from domain.payouts import IN_TRANSIT, BankLine, Transfer
from testkit.settlement_model import ConektaAccount

pytestmark = pytest.mark.unit

TAX = Decimal("0.16")
START = int(datetime(2026, 11, 2, 15, tzinfo=UTC).timestamp())  # a Monday


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Books:
    """An in-memory ledger: what the webhooks and settle match posted."""

    postings: dict[tuple[bool, str], Posting] = field(default_factory=dict)
    charges: dict[str, ledger.Charge] = field(default_factory=dict)
    chargebacks: dict[str, ChargebackRow] = field(default_factory=dict)  # by charge id

    def post(self, posting: Posting) -> None:
        assert sum(e.amount for e in posting.entries) == 0
        self.postings.setdefault(posting.key, posting)

    def balance(self, account: str) -> int:
        return sum(
            e.amount for p in self.postings.values() for e in p.entries if e.account == account
        )

    def of(self, charge_id: str) -> list[Posting]:
        return [p for p in self.postings.values() if p.charge_id == charge_id]

    def settlement_books(self) -> rules.Books:
        return rules.Books(
            charges={(False, c.id): self._book(c) for c in self.charges.values()},
            posted=set(self.postings),
            landed={
                (False, p.business_key.split(":")[1]): int(p.event_id.split(":")[1])
                for p in self.postings.values()
                if p.kind == "payout_landed"
            },
            tax_rate=TAX,
        )

    def _book(self, charge: ledger.Charge) -> rules.ChargeBook:
        mine = self.of(charge.id)
        fees = sum(
            e.amount
            for p in mine
            if p.kind in ("payment", "fee", "fee_adjust")
            for e in p.entries
            if e.account in (ledger.FEES, ledger.TAX_ON_FEES)
        )
        refunds = tuple(
            rules.PostedRefund(p.business_key, p.amount, p.effective_at)
            for p in mine
            if p.kind == "refund"
        )
        payment = next((p.amount for p in mine if p.kind == "payment"), None)
        fee_key = (False, ledger.business_key(ledger.FEE, charge.order_id, charge.id))
        return rules.ChargeBook(
            charge, payment, fees, fee_key in self.postings, refunds, self._chargeback(charge)
        )

    def _chargeback(self, charge: ledger.Charge) -> ChargebackState | None:
        row = self.chargebacks.get(charge.id)
        if row is None:
            return None
        moves = [p for p in self.of(charge.id) if p.kind.startswith("chargeback")]
        withheld = sum(e.amount for p in moves for e in p.entries if e.account == ledger.DISPUTED)
        lost = sum(e.amount for p in moves for e in p.entries if e.account.startswith("customer:"))
        steps = frozenset(
            p.business_key.split(":")[2] for p in moves if len(p.business_key.split(":")) == 3
        )
        return ChargebackState(row, chargeback_rules.Held(withheld, lost), steps, len(moves))

    def apply(self, match: rules.Match) -> None:
        for posting in match.postings.values():
            self.post(posting)
        for target in match.targets:
            for row in self.chargebacks.values():
                if row.id == target.chargeback_id:
                    row.conekta_amount = row.amount = target.amount


@dataclass(frozen=True)
class Webhook:
    """What one webhook does to the in-memory ledger (as the apply path would)."""

    kind: str  # paid, refund, chargeback, won, lost
    charge: str
    amount: int = 0
    fee: int | None = None
    ref: str = ""
    when: int = 0

    def deliver(self, books: Books) -> bool:
        """False when its charge is not booked yet (the worker retries it later)."""
        order = f"ord_{self.charge}"
        if self.kind == "paid":
            charge = ledger.Charge(
                self.charge, order, self.amount, "MXN", False, "cus", None, at(self.when)
            )
            books.charges.setdefault(self.charge, charge)
            key = ledger.business_key(ledger.PAYMENT, order, self.charge)
            books.post(
                _posting(
                    key,
                    "payment",
                    charge,
                    self.amount,
                    self.when,
                    Entry(RECEIVABLE, self.amount),
                    Entry("customer:cus", -self.amount),
                )
            )
            if self.fee:
                books.post(ledger.fee_posting(charge, self.fee, TAX, "evt", at(self.when)))
            return True
        booked = books.charges.get(self.charge)
        if booked is None:
            return False
        charge = booked
        if self.kind == "refund":
            key = ledger.business_key(ledger.REFUND, order, self.ref)
            books.post(
                _posting(
                    key,
                    "refund",
                    charge,
                    self.amount,
                    self.when,
                    Entry("customer:cus", self.amount),
                    Entry(RECEIVABLE, -self.amount),
                )
            )
        elif self.kind == "chargeback":
            self._chargeback(books, charge)
        else:
            row = books.chargebacks.get(self.charge)
            if row is None:
                return False
            row.conekta_status = self.kind  # won or lost
            state = books._chargeback(charge)
            assert state is not None
            moves = chargeback_rules.moves(state.held, self.kind, row.amount, posted_before=True)
            for move in moves:
                key = ledger.chargeback_key(
                    row.id, move.step, state.postings + 1 if move.step in state.steps else None
                )
                books.post(ledger.chargeback(key, move, charge, "evt", at(self.when)))
        return True  # fmt: skip

    def _chargeback(self, books: Books, charge: ledger.Charge) -> None:
        refunded = sum(p.amount for p in books.of(charge.id) if p.kind == "refund")
        row = ChargebackRow(f"chbk_{charge.id}", False, charge.id, charge.order_id, "open",
                            0, "MXN", "evt", at(self.when), "open", at(self.when))  # fmt: skip
        row.amount = chargeback_rules.target(charge.amount, [(refunded, at(0))], at(self.when))
        books.chargebacks[charge.id] = row
        for move in chargeback_rules.moves(
            chargeback_rules.Held(), "open", row.amount, posted_before=False
        ):
            key = ledger.chargeback_key(row.id, move.step)
            books.post(ledger.chargeback(key, move, charge, "evt", at(self.when)))


def _posting(
    key: str, kind: str, charge: ledger.Charge, amount: int, when: int, *entries: Entry
) -> Posting:
    return Posting(
        key, kind, charge.order_id, charge.id, "MXN", False, "evt", at(when), amount, entries
    )


@dataclass
class Day:
    conekta: ConektaAccount
    webhooks: list[Webhook]
    lines: list[BankLine]


@st.composite
def days(draw: Any) -> Day:
    """A few days of one merchant, told by Conekta's model and by the webhooks."""
    conekta, hooks = ConektaAccount(livemode=False), []
    lines: list[BankLine] = []
    clock = START
    for n in range(draw(st.integers(1, 5))):
        clock += draw(st.integers(600, 20_000))
        charge, amount = f"ch_{n}", draw(st.integers(1_000, 90_000))
        fee = (amount * 34 // 1000 + 300) * 116 // 100
        webhook_fee = draw(st.sampled_from([fee, None, fee - 7]))
        conekta.capture(charge, amount, fee, clock, pending=draw(st.booleans()))
        hooks.append(Webhook("paid", charge, amount, webhook_fee, when=clock))
        refunded = 0
        if draw(st.booleans()):
            refunded = draw(st.integers(1, amount))
            clock += 60
            conekta.refund(charge, refunded, clock, fee=draw(st.sampled_from([0, 0, 348])))
            hooks.append(Webhook("refund", charge, refunded, ref=f"rf_{n}", when=clock))
        if refunded < amount and draw(st.booleans()):
            clock += 60
            withheld = amount - refunded - draw(st.integers(0, (amount - refunded) // 2))
            conekta.chargeback(charge, withheld, draw(st.sampled_from([0, 17_400])), clock)
            hooks.append(Webhook("chargeback", charge, when=clock))
            ending = draw(st.sampled_from(["open", "won", "lost"]))
            clock += 60
            if ending == "won":
                conekta.won(charge, withheld, clock)
            elif ending == "lost":
                conekta.lose(withheld)
            if ending != "open":
                hooks.append(Webhook(ending, charge, when=clock))
        if draw(st.booleans()):
            conekta.adjust("rounding_adjustment", draw(st.integers(-3, 3)), clock + 1)
        if draw(st.booleans()):
            conekta.settle()
        if draw(st.booleans()):
            clock += 60
            transfer = conekta.payout(clock, f"REF{n}")
            if transfer is not None and draw(st.integers(0, 4)) == 0:
                conekta.reverse(transfer, clock + 30)  # the bank refused it: no line
            elif transfer is not None:
                sent_on = at(clock).astimezone(rules.LEDGER_TZ).date()
                shown = sent_on + timedelta(days=draw(st.integers(0, 2)))
                reference = f"SPEI {transfer['statement_reference']}"
                line = BankLine(len(lines) + 1, "bbva", shown, transfer["amount"], "MXN", reference)
                lines.append(line)
    return Day(conekta, hooks, lines)


def txn(record: dict[str, Any]) -> rules.Txn:
    return rules.Txn(record["id"], record["livemode"], record["type"], record["status"],
                     record["amount"], record["fee"], record["net"], record["charge"],
                     record["currency"], at(record["created_at"]))  # fmt: skip


def transfer(record: dict[str, Any]) -> Transfer:
    return Transfer(record["id"], record["livemode"], record["amount"], record["currency"],
                    record["status"], record["statement_reference"],
                    at(record["created_at"]))  # fmt: skip


def retried(waiting: list[Webhook], books: Books) -> list[Webhook]:
    """The worker retries a webhook whose charge is unknown until its payment is booked."""
    while True:
        still = [h for h in waiting if not h.deliver(books)]
        if len(still) == len(waiting):
            return still
        waiting = still


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day=days(), data=st.data())
def test_any_arrival_order_ends_at_conekta_balance(day: Day, data: Any) -> None:
    # Everything that arrives: each webhook, each record (pages of any size), each bank line.
    arrivals: list[tuple[str, Any]] = [("hook", h) for h in day.webhooks]
    arrivals += [("txn", t) for t in day.conekta.transactions]
    arrivals += [("transfer", t) for t in day.conekta.transfers]
    arrivals += [("line", line) for line in day.lines]
    order = data.draw(st.permutations(arrivals))
    books, known = Books(), Counter[str]()
    txns: list[rules.Txn] = []
    transfers: list[Transfer] = []
    lines: list[BankLine] = []
    waiting: list[Webhook] = []
    for kind, item in order:
        if kind == "hook":
            waiting.append(item)
        elif kind == "txn":
            txns.append(txn(item))
        elif kind == "transfer":
            transfers.append(transfer(item))
        else:
            lines.append(item)
        waiting = retried(waiting, books)
        known[kind] += 1
        if data.draw(st.booleans()):  # a match now and then, on what is known so far
            books.apply(rules.plan(txns, transfers, lines, books.settlement_books()))
    assert not waiting
    books.apply(rules.plan(txns, transfers, lines, books.settlement_books()))

    held = books.balance(RECEIVABLE) + books.balance(ledger.DISPUTED)
    assert held == day.conekta.total()
    assert books.balance(IN_TRANSIT) == 0
    landed = sum(t["amount"] for t in day.conekta.transfers if t["status"] != "failed")
    assert books.balance("bank:bbva") == landed
    last = rules.plan(txns, transfers, lines, books.settlement_books())
    assert not last.postings  # a second run posts nothing
    assert not [i for i in last.items if i.state in (rules.UNMATCHED, rules.IN_FLIGHT)]
    total = sum(e.amount for p in books.postings.values() for e in p.entries)
    assert total == 0


def test_business_days_skip_the_weekend() -> None:
    from domain.payouts import business_days_after

    assert business_days_after(date(2026, 11, 13), 3) == date(2026, 11, 18)  # Fri -> Wed
    assert business_days_after(date(2026, 11, 10), 3) == date(2026, 11, 13)  # Tue -> Fri
