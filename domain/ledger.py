"""Double-entry postings for the life of a charge; pure. Amounts are signed: debit +, credit -.

For a paid charge of amount A with fee F (key payment:<order>:<charge>, at the charge's paid_at):
    conekta:receivable  +(A - F)   what Conekta owes the merchant
    conekta:fees        +F         commission and tax
    customer:<key>      -A         what that customer has paid (a credit)
A refund of R (key refund:<order>:<refund id>, at the refund's created_at): customer +R,
receivable -R; the fee stays (Conekta does not document returning it).
A chargeback on that charge withholds all of A (keys chargeback:<id>:opened|won|lost):
    opened  receivable -A, conekta:disputed +A   (at the chargeback's created_at)
    won     disputed -A, receivable +A           (at the event's created_at)
    lost    disputed -A, customer +A
Every key is unique per mode (livemode): test and live money never meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.order_event import OrderEvent, PaidCharge, Refund

RECEIVABLE = "conekta:receivable"
FEES = "conekta:fees"
DISPUTED = "conekta:disputed"
PAYMENT = "payment"
REFUND = "refund"
CHARGEBACK = "chargeback"
CHARGEBACK_STEPS = ("opened", "won", "lost")


@dataclass(frozen=True)
class Entry:
    account: str
    amount: int  # cents, debit positive


@dataclass(frozen=True)
class Posting:
    business_key: str
    kind: str  # payment, refund, chargeback_opened, chargeback_won, chargeback_lost
    order_id: str
    charge_id: str
    currency: str
    livemode: bool
    event_id: str
    effective_at: datetime  # when the money moved (recorded_at: when the row was written)
    amount: int  # the money moved, positive cents
    entries: tuple[Entry, ...]
    # When the money really moved, if that fell in a closed period (domain/periods.py): the
    # posting is then effective on the first open instant instead.
    occurred_at: datetime | None = None
    provenance: str | None = None  # domain.provenance: set by the plan from its event

    @property
    def key(self) -> tuple[bool, str]:
        return (self.livemode, self.business_key)


@dataclass(frozen=True)
class Charge:
    """A paid charge as booked: enough to post its refunds and chargebacks."""

    id: str
    order_id: str
    amount: int
    currency: str
    livemode: bool
    customer_key: str
    refunded: int = 0  # refunds already booked against it


def candidate_keys(event: OrderEvent, order_id: str | None = None) -> set[str]:
    """Every business key an event could post (payments, refunds, chargeback steps); a charge
    event names no order until its charge is resolved: `order_id` says which when known."""
    if event.chargeback is not None:
        return {chargeback_key(event.chargeback.id, step) for step in CHARGEBACK_STEPS}
    order = event.order_id or order_id or ""
    keys = set()
    for charge in event.paid_charges:
        keys.add(business_key(PAYMENT, order, charge.id))
        keys |= {business_key(REFUND, order, r.id) for r in charge.refunds}
    return keys


def customer_account(key: str) -> str:
    return f"customer:{key}"


def business_key(kind: str, order_id: str, charge_id: str) -> str:
    return f"{kind}:{order_id}:{charge_id}"


def chargeback_key(chargeback_id: str, step: str) -> str:
    return f"{CHARGEBACK}:{chargeback_id}:{step}"


def _nonzero(*entries: Entry) -> tuple[Entry, ...]:
    return tuple(e for e in entries if e.amount != 0)


def payment(charge: PaidCharge, booked: Charge, event_id: str, effective_at: datetime) -> Posting:
    return Posting(
        business_key(PAYMENT, booked.order_id, charge.id),
        PAYMENT,
        booked.order_id,
        charge.id,
        booked.currency,
        booked.livemode,
        event_id,
        charge.paid_at or effective_at,
        charge.amount,
        _nonzero(
            Entry(RECEIVABLE, charge.amount - charge.fee),
            Entry(FEES, charge.fee),
            Entry(customer_account(booked.customer_key), -charge.amount),
        ),
    )


def refund(refund: Refund, booked: Charge, event_id: str) -> Posting:
    return Posting(
        business_key(REFUND, booked.order_id, refund.id),
        REFUND,
        booked.order_id,
        booked.id,
        booked.currency,
        booked.livemode,
        event_id,
        refund.created_at,
        refund.amount,
        _nonzero(
            Entry(customer_account(booked.customer_key), refund.amount),
            Entry(RECEIVABLE, -refund.amount),
        ),
    )


def chargeback(
    chargeback_id: str, step: str, booked: Charge, event_id: str, effective_at: datetime
) -> Posting:
    """step: opened, won or lost."""
    other = {
        "opened": RECEIVABLE,
        "won": RECEIVABLE,
        "lost": customer_account(booked.customer_key),
    }[step]
    sign = 1 if step == "opened" else -1  # opened moves money into disputed, the others out
    return Posting(
        chargeback_key(chargeback_id, step),
        f"{CHARGEBACK}_{step}",
        booked.order_id,
        booked.id,
        booked.currency,
        booked.livemode,
        event_id,
        effective_at,
        booked.amount,
        (Entry(DISPUTED, sign * booked.amount), Entry(other, -sign * booked.amount)),
    )
