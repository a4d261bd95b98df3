"""Double-entry postings for paid charges; pure. Amounts are signed: debit +, credit -.

For a paid charge of amount A with fee F:
    conekta:receivable  +(A - F)   what Conekta owes the merchant
    conekta:fees        +F         commission and tax
    customer:<key>      -A         what that customer has paid (a credit)
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.order_event import OrderEvent, PaidCharge

RECEIVABLE = "conekta:receivable"
FEES = "conekta:fees"
PAYMENT = "payment"


@dataclass(frozen=True)
class Entry:
    account: str
    amount: int  # cents, debit positive


@dataclass(frozen=True)
class Posting:
    business_key: str
    kind: str
    order_id: str
    charge_id: str
    currency: str
    event_id: str
    entries: tuple[Entry, ...]


def customer_account(key: str) -> str:
    return f"customer:{key}"


def business_key(kind: str, order_id: str, charge_id: str) -> str:
    return f"{kind}:{order_id}:{charge_id}"


def payment_entries(charge: PaidCharge, customer_key: str) -> tuple[Entry, ...]:
    entries = (
        Entry(RECEIVABLE, charge.amount - charge.fee),
        Entry(FEES, charge.fee),
        Entry(customer_account(customer_key), -charge.amount),
    )
    return tuple(e for e in entries if e.amount != 0)


def payment_postings(event: OrderEvent) -> list[Posting]:
    """One posting per paid charge of the event; the business key makes each one once-only."""
    if not event.paid_charges:
        return []
    assert event.customer_key is not None  # checked when the event was parsed
    return [
        Posting(
            business_key=business_key(PAYMENT, event.order_id, charge.id),
            kind=PAYMENT,
            order_id=event.order_id,
            charge_id=charge.id,
            currency=event.currency,
            event_id=event.event_id,
            entries=payment_entries(charge, event.customer_key),
        )
        for charge in event.paid_charges
    ]
