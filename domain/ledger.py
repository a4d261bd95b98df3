"""Double-entry postings for the life of a charge; pure. Amounts are signed: debit +, credit -.

For a paid charge of amount A (key payment:<order>:<charge>, at the charge's paid_at):
    conekta:receivable  +A         what Conekta owes the merchant, gross
    customer:<key>      -A         what that customer has paid (a credit)
Its fee F is a movement of its own (key fee:<order>:<charge>), posted from whichever event first
carries it (domain/fee.py splits it by the tax rate):
    conekta:receivable  -F
    conekta:fees        +commission
    tax:vat_on_fees     +(F - commission)   (no entry when the tax rate is 0)
Payments booked before the fee was its own movement hold it inside the payment posting
(receivable +(A - F), fees +F): such a charge is booked with its fee known.
A refund of R whose money moved (domain/refund.py; key refund:<order>:<refund id>, at the
refund's created_at): customer +R, receivable -R; the fee stays (Conekta does not document
returning it). A refund that fails after it posted is reversed (key ...:reversed).
A chargeback moves what it holds to where its status wants its target (domain/chargeback.py),
one posting per move (keys chargeback:<id>:<step>, then chargeback:<id>:<step>:<n>):
    conekta:disputed +withheld, customer +lost, conekta:receivable -(withheld + lost)
Every key is unique per mode (livemode): test and live money never meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain import fee as fee_rules
from domain.chargeback import Move
from domain.order_event import OrderEvent, PaidCharge, Refund

RECEIVABLE = "conekta:receivable"
FEES = "conekta:fees"
TAX_ON_FEES = "tax:vat_on_fees"
DISPUTED = "conekta:disputed"
PAYMENT = "payment"
FEE = "fee"
REFUND = "refund"
REFUND_REVERSED = "refund_reversed"
CHARGEBACK = "chargeback"


@dataclass(frozen=True)
class Entry:
    account: str
    amount: int  # cents, debit positive


@dataclass(frozen=True)
class Posting:
    business_key: str
    kind: str  # payment, fee, refund, refund_reversed, chargeback_<step>; settlement's kinds
    order_id: str | None  # None: a settlement posting that belongs to no order (a transfer)
    charge_id: str | None
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

    def vouched_by(self, provenance: str) -> Posting:
        """This posting with its provenance (domain.provenance). A field copy, not
        dataclasses.replace: the plan stamps every posting it makes, and replace (fields() and
        the frozen __init__ again) cost ~2.8 us a posting against ~0.4."""
        twin = object.__new__(Posting)
        twin.__dict__.update(self.__dict__, provenance=provenance)
        return twin


@dataclass(frozen=True)
class Charge:
    """A paid charge as booked: its customer is fixed when its payment is booked, and its
    refunds and chargebacks use that account whatever later events say."""

    id: str
    order_id: str
    amount: int
    currency: str
    livemode: bool
    customer_key: str
    fee: int | None = None  # None: not known yet (no event carried it)
    paid_at: datetime | None = None


def candidate_keys(event: OrderEvent, order_id: str | None = None) -> set[str]:
    """Every payment, fee and refund key an order event could post (provenance checks); a
    charge event names no order until its charge is resolved: `order_id` says which when known.
    Chargeback moves are numbered: see `could_post`."""
    order = event.order_id or order_id or ""
    keys = set()
    for charge in event.paid_charges:
        keys |= {business_key(PAYMENT, order, charge.id), business_key(FEE, order, charge.id)}
        for refund in charge.refunds:
            refund_key = business_key(REFUND, order, refund.id)
            keys |= {refund_key, refund_key + ":reversed"}
    return keys


def could_post(event: OrderEvent, key: str, order_id: str | None = None) -> bool:
    """Whether this event could have posted `key`: one of its keys, or a move of its
    chargeback."""
    if event.chargeback is not None:
        return key.startswith(f"{CHARGEBACK}:{event.chargeback.id}:")
    return key in candidate_keys(event, order_id)


def customer_account(key: str) -> str:
    return f"customer:{key}"


def business_key(kind: str, order_id: str, charge_id: str) -> str:
    return f"{kind}:{order_id}:{charge_id}"


def chargeback_key(chargeback_id: str, step: str, number: int | None = None) -> str:
    """The first posting of each step has the plain key; later ones are numbered."""
    base = f"{CHARGEBACK}:{chargeback_id}:{step}"
    return base if number is None else f"{base}:{number}"


def _nonzero(*entries: Entry) -> tuple[Entry, ...]:
    return tuple(e for e in entries if e.amount != 0)


def _posting(
    key: str, kind: str, booked: Charge, event_id: str, at: datetime, amount: int, *e: Entry
) -> Posting:
    return Posting(
        key,
        kind,
        booked.order_id,
        booked.id,
        booked.currency,
        booked.livemode,
        event_id,
        at,
        amount,
        _nonzero(*e),
    )


def payment(charge: PaidCharge, booked: Charge, event_id: str, effective_at: datetime) -> Posting:
    """A's gross: the fee is its own movement (fee_posting)."""
    return _posting(
        business_key(PAYMENT, booked.order_id, charge.id),
        PAYMENT,
        booked,
        event_id,
        charge.paid_at or effective_at,
        charge.amount,
        Entry(RECEIVABLE, charge.amount),
        Entry(customer_account(booked.customer_key), -charge.amount),
    )


def fee_entries(fee: int, tax_rate: Decimal) -> tuple[Entry, ...]:
    """A fee of `fee` cents taken from the receivable (negative: returned to it), split into
    commission and IVA by `tax_rate`. For this issue's fees and settlement's true-ups."""
    commission, tax = fee_rules.split(fee, tax_rate)
    return _nonzero(Entry(RECEIVABLE, -fee), Entry(FEES, commission), Entry(TAX_ON_FEES, tax))


def fee_posting(
    booked: Charge, fee: int, tax_rate: Decimal, event_id: str, effective_at: datetime
) -> Posting:
    return Posting(
        business_key(FEE, booked.order_id, booked.id),
        FEE,
        booked.order_id,
        booked.id,
        booked.currency,
        booked.livemode,
        event_id,
        effective_at,
        fee,
        fee_entries(fee, tax_rate),
    )


def refund(refund: Refund, booked: Charge, event_id: str) -> Posting:
    return _posting(
        business_key(REFUND, booked.order_id, refund.id),
        REFUND,
        booked,
        event_id,
        refund.created_at,
        refund.amount,
        Entry(customer_account(booked.customer_key), refund.amount),
        Entry(RECEIVABLE, -refund.amount),
    )


def refund_reversal(refund: Refund, booked: Charge, event_id: str, at: datetime) -> Posting:
    """A refund posted as moved that Conekta later says failed: its money comes back."""
    return _posting(
        business_key(REFUND, booked.order_id, refund.id) + ":reversed",
        REFUND_REVERSED,
        booked,
        event_id,
        at,
        refund.amount,
        Entry(customer_account(booked.customer_key), -refund.amount),
        Entry(RECEIVABLE, refund.amount),
    )


def chargeback(
    key: str, move: Move, booked: Charge, event_id: str, effective_at: datetime
) -> Posting:
    """One move of a chargeback's money (domain.chargeback.moves)."""
    return _posting(
        key,
        f"{CHARGEBACK}_{move.step}",
        booked,
        event_id,
        effective_at,
        max(abs(move.withheld), abs(move.lost)),
        Entry(DISPUTED, move.withheld),
        Entry(customer_account(booked.customer_key), move.lost),
        Entry(RECEIVABLE, -(move.withheld + move.lost)),
    )
