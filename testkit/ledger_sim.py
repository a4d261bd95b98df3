"""The database as far as `plan_batch` sees it, in memory: what `Store.apply_batch` loads and
writes, for property tests of the plan (tests/unit) without PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from core.errors import UnknownCharge
from domain import ledger
from domain.chargeback import Held
from domain.fee import DEFAULT_TAX_RATE
from domain.fulfillment import OrderView
from domain.money_rows import ChargebackRow, ChargebackState, RefundRow
from domain.order_state import OrderState
from domain.outcome import Outcome
from domain.plan import Booked, Incoming, plan_batch


@dataclass
class MemoryStore:
    fee_tax_rate: Decimal = DEFAULT_TAX_RATE
    orders: dict[tuple[bool, str], OrderState] = field(default_factory=dict)  # (livemode, id)
    views: dict[tuple[bool, str], OrderView] = field(default_factory=dict)
    archived: set[str] = field(default_factory=set)
    postings: dict[tuple[bool, str], ledger.Posting] = field(default_factory=dict)
    charges: dict[tuple[bool, str], ledger.Charge] = field(default_factory=dict)
    refunds: dict[tuple[bool, str], RefundRow] = field(default_factory=dict)
    chargebacks: dict[tuple[bool, str], ChargebackRow] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    dead: list[Incoming] = field(default_factory=list)

    def booked(self) -> Booked:
        return Booked(
            orders=self.orders,
            archived_ids=self.archived,
            keys=set(self.postings),
            charges=self.charges,
            chargebacks={k: self._chargeback_state(row) for k, row in self.chargebacks.items()},
            order_views=self.views,
            refunds=self.refunds,
        )

    def _chargeback_state(self, row: ChargebackRow) -> ChargebackState:
        """What the store reads from the ledger: the chargeback's postings, summed."""
        withheld = lost = count = 0
        steps = set()
        for posting in self.postings.values():
            parts = posting.business_key.split(":")
            if parts[0] != ledger.CHARGEBACK or parts[1] != row.id:
                continue
            if posting.livemode != row.livemode:
                continue
            count += 1
            if len(parts) == 3:
                steps.add(parts[2])
            for entry in posting.entries:
                if entry.account == ledger.DISPUTED:
                    withheld += entry.amount
                elif entry.account.startswith("customer:"):
                    lost += entry.amount
        return ChargebackState(row, Held(withheld, lost), frozenset(steps), count)

    def apply(self, batch: Sequence[Incoming]) -> None:
        plan = plan_batch(batch, self.booked(), fee_tax_rate=self.fee_tax_rate)
        for row in [*plan.new_orders.values(), *plan.changed_orders.values()]:
            self.orders[(row.livemode, row.id)] = row.state()
            self.views[(row.livemode, row.id)] = OrderView(
                row.id, row.status, row.amount, row.currency, row.customer_key, row.livemode
            )
        self.charges.update(plan.charges)
        self.refunds.update(plan.refunds)
        self.chargebacks.update(plan.chargebacks)
        self.archived |= {row.event_id for row in plan.archive}
        assert not set(plan.postings) & set(self.postings), "a business key posted twice"
        self.postings.update(plan.postings)
        self.messages += [m.message_id for m in plan.messages]
        self.outcomes.update({row.event_id: row.outcome for row in plan.archive})

    def money(self, livemode: bool | None = None) -> dict[str, int]:
        """Net balance per account (debit +), without zeros."""
        totals: dict[str, int] = {}
        for posting in self.postings.values():
            if livemode is not None and posting.livemode != livemode:
                continue
            for entry in posting.entries:
                totals[entry.account] = totals.get(entry.account, 0) + entry.amount
        return {k: v for k, v in totals.items() if v}


def deliver(
    events: Sequence[Incoming],
    arrival: Sequence[int],
    cuts: Sequence[int],
    fee_tax_rate: Decimal = DEFAULT_TAX_RATE,
) -> MemoryStore:
    """Like the worker: batches; a failing batch one by one; an unknown charge retried later
    (after everything else), dead-lettered when nothing else can book it."""
    sim = MemoryStore(fee_tax_rate)
    queue = [events[i % len(events)] for i in arrival]
    cut = iter([*cuts, *([1] * len(queue) * 4)])
    waiting: list[Incoming] = []
    progressed = False  # since the waiting events were last put back
    while queue:
        size = next(cut)
        batch, queue = queue[:size], queue[size:]
        try:
            sim.apply(batch)
            progressed = True
        except UnknownCharge:
            for item in batch:
                try:
                    sim.apply([item])
                    progressed = True
                except UnknownCharge:
                    waiting.append(item)
        if not queue and waiting and progressed:
            queue, waiting, progressed = waiting, [], False
    sim.dead = waiting
    return sim
