"""The rows the money rules keep beside the ledger, as the plan reads and writes them: each
refund as Conekta last said, each chargeback with what its postings hold, orders flagged for
reconcile. Pure data (store/apply.py loads and writes them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from domain import refund as refund_rules
from domain.chargeback import Held, Move
from domain.order_state import OrderState


@dataclass
class ChargebackRow:
    id: str
    livemode: bool
    charge_id: str
    order_id: str
    status: str  # the fulfillment's four: open, under_review, won, lost (domain/chargeback.py)
    amount: int  # its target: what Conekta withholds for it
    currency: str
    last_event_id: str
    last_event_created_at: datetime
    conekta_status: str  # Conekta's own status: decides the money
    opened_at: datetime  # the chargeback's created_at (refunds before it lower the target)
    conekta_amount: int | None = None  # Conekta's chargeback transaction (settlement), when known

    def state(self) -> OrderState:
        return OrderState(self.conekta_status, self.last_event_id, self.last_event_created_at)


@dataclass(frozen=True)
class ChargebackState:
    """A chargeback as booked: its row, and what its postings hold now."""

    row: ChargebackRow
    held: Held = field(default_factory=Held)
    steps: frozenset[str] = frozenset()  # steps posted under their plain key
    postings: int = 0  # how many postings it has

    def after(self, move: Move) -> ChargebackState:
        held = Held(self.held.withheld + move.withheld, self.held.lost + move.lost)
        return replace(self, held=held, steps=self.steps | {move.step}, postings=self.postings + 1)


@dataclass
class RefundRow:
    """A refund as Conekta last said (a pending one is recorded, not posted)."""

    id: str
    livemode: bool
    charge_id: str
    order_id: str
    amount: int
    currency: str
    status: str | None  # Conekta's; None: not said (moved)
    created_at: datetime
    last_event_id: str

    @property
    def moved(self) -> int:
        return refund_rules.moved_amount(self.status, self.amount)


@dataclass(frozen=True)
class ReconcileFlag:
    """An order whose event said its lists go on (`has_more`): `reconcile` fetches the rest."""

    livemode: bool
    order_id: str
    event_id: str
    reason: str
