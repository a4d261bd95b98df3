"""What a chargeback does to the money, by Conekta's status; pure.

Each chargeback has one **target**: the amount Conekta withholds for it. It is Conekta's own
chargeback transaction once known (settlement), else the charge's amount less the refunds whose
money moved and whose `created_at` is before the chargeback's (Conekta's dates, never the order
of arrival), never below 0.

The chargeback's latest status (by the event's `created_at`, ties by event id) says where that
target sits:

    Conekta status                                   money                fulfillment status
    open, pending, action_required, rt               withheld: disputed   open
    under_review, pending_review, represented,       withheld: disputed   under_review
    rt_sent
    won, covered                                     back to receivable   won
    lost                                             to the customer      lost
    any other (a status Conekta adds later)          withheld: disputed   open

The ledger only ever moves what is held now (`Held`: in conekta:disputed, and given to the
customer) to what the status and target want, with its own key each time: a late refund, a
reversal (won -> lost, lost -> won) or Conekta's transaction adjusts it once, and nothing moves
twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

WITHHELD = "withheld"
RETURNED = "returned"
LOST = "lost"


@dataclass(frozen=True)
class Rule:
    money: str  # WITHHELD, RETURNED or LOST
    fulfillment: str  # open, under_review, won, lost (schemas/fulfillment.json)


RULES = {
    "open": Rule(WITHHELD, "open"),
    "pending": Rule(WITHHELD, "open"),
    "action_required": Rule(WITHHELD, "open"),
    "rt": Rule(WITHHELD, "open"),
    "rt_sent": Rule(WITHHELD, "under_review"),
    "represented": Rule(WITHHELD, "under_review"),
    "pending_review": Rule(WITHHELD, "under_review"),
    "under_review": Rule(WITHHELD, "under_review"),
    "won": Rule(RETURNED, "won"),
    "covered": Rule(RETURNED, "won"),
    "lost": Rule(LOST, "lost"),
}
UNKNOWN = Rule(WITHHELD, "open")


def rule(status: str) -> Rule:
    return RULES.get(status, UNKNOWN)


def target(
    charge_amount: int,
    refunds: Iterable[tuple[int, datetime]],
    opened_at: datetime,
    conekta_amount: int | None = None,
) -> int:
    """Cents withheld: Conekta's chargeback transaction when known, else the charge less the
    moved refunds (amount, created_at) created before the chargeback; never below 0."""
    if conekta_amount is not None:
        return max(0, abs(conekta_amount))
    before = sum(amount for amount, created_at in refunds if created_at < opened_at)
    return max(0, charge_amount - before)


@dataclass(frozen=True)
class Held:
    """Where a chargeback's money is now: in conekta:disputed, and given to the customer."""

    withheld: int = 0
    lost: int = 0

    @property
    def money(self) -> str:
        if self.lost:
            return LOST
        return WITHHELD if self.withheld else RETURNED


def wanted(status: str, amount: int) -> Held:
    """Where the money of a chargeback of target `amount` belongs in `status`."""
    money = rule(status).money
    if money == WITHHELD:
        return Held(withheld=amount)
    if money == LOST:
        return Held(lost=amount)
    return Held()


@dataclass(frozen=True)
class Move:
    """One posting of a chargeback: disputed +withheld, customer +lost, receivable -(both)."""

    step: str  # opened, won, lost, adjusted
    withheld: int
    lost: int


def moves(held: Held, status: str, amount: int, *, posted_before: bool) -> list[Move]:
    """The postings that take a chargeback from `held` to where `status` wants `amount`.

    A chargeback's first posting always opens it (withholds the target, at the chargeback's
    date), so the ledger shows the dispute even when its first event already says won or lost.
    """
    result: list[Move] = []
    if not posted_before and amount > 0:
        result.append(Move("opened", amount - held.withheld, -held.lost))
        held = Held(withheld=amount)
    goal = wanted(status, amount)
    if goal != held:
        step = _step(held, goal, rule(status).money)
        result.append(Move(step, goal.withheld - held.withheld, goal.lost - held.lost))
    return result


def _step(held: Held, goal: Held, money: str) -> str:
    if held.money == money and (held.withheld or held.lost):
        return "adjusted"  # the same place, another target
    return {WITHHELD: "opened", RETURNED: "won", LOST: "lost"}[money]
