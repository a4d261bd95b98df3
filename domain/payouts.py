"""Conekta's transfers (payouts) and the bank lines that show them; pure.

A transfer sent: payout:<transfer>:sent (conekta:in_transit +T, conekta:receivable -T), on its
created_at. It lands when a bank line shows it: same amount and currency, the line's reference
contains the transfer's statement_reference, dated from the transfer's day to BANK_DAYS business
days (Monday to Friday) after it: payout:<transfer>:landed (bank:<account> +T, in transit -T),
on the line's day. Each bank line shows one transfer at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.ledger import RECEIVABLE, Entry, Posting

IN_TRANSIT = "conekta:in_transit"
API = "api"  # domain.provenance: Conekta's API record moved it
STATEMENT = "statement"  # a bank line of an imported statement moved it
BANK_DAYS = 3  # a transfer shows in the bank within this many business days


@dataclass(frozen=True)
class Transfer:
    """A payout Conekta sent to the merchant's bank (GET /transfers)."""

    id: str
    livemode: bool
    amount: int
    currency: str
    status: str
    statement_reference: str | None
    created_at: datetime


@dataclass(frozen=True)
class BankLine:
    id: int
    account: str  # bank:<account>
    date: date
    amount: int  # cents, positive = money in
    currency: str
    reference: str
    description: str = ""


def business_days_after(day: date, days: int) -> date:
    """The date `days` business days (Monday to Friday) after `day`."""
    while days > 0:
        day += timedelta(days=1)
        days -= day.weekday() < 5
    return day


def business_days_between(start: date, end: date) -> int:
    """How many business days (Monday to Friday) after `start` up to `end` (0 when end <= start):
    how long a transfer sent on `start` has been in transit on `end`."""
    weeks, rest = divmod(max((end - start).days, 0), 7)
    extra = sum((start + timedelta(days=d)).weekday() < 5 for d in range(1, rest + 1))
    return weeks * 5 + extra


def bank_line_for(transfer: Transfer, lines: Sequence[BankLine], tz: ZoneInfo) -> BankLine | None:
    """The first bank line that is this transfer: same amount and currency, its reference
    contains the transfer's statement_reference, dated within BANK_DAYS business days."""
    if not transfer.statement_reference:
        return None
    sent_on = transfer.created_at.astimezone(tz).date()
    last = business_days_after(sent_on, BANK_DAYS)
    for line in lines:
        if (
            line.amount == transfer.amount
            and line.currency == transfer.currency
            and transfer.statement_reference in line.reference
            and sent_on <= line.date <= last
        ):
            return line
    return None


def sent(transfer: Transfer) -> Posting:
    return Posting(
        f"payout:{transfer.id}:sent",
        "payout_sent",
        None,
        None,
        transfer.currency,
        transfer.livemode,
        transfer.id,
        transfer.created_at,
        transfer.amount,
        (Entry(IN_TRANSIT, transfer.amount), Entry(RECEIVABLE, -transfer.amount)),
        provenance=API,
    )


def landed(transfer: Transfer, line: BankLine, tz: ZoneInfo) -> Posting:
    """Effective on the bank line's day (its start in the ledger's zone), never before it left."""
    day_start = datetime.combine(line.date, time(0), tz)
    return Posting(
        f"payout:{transfer.id}:landed",
        "payout_landed",
        None,
        None,
        transfer.currency,
        transfer.livemode,
        f"bank_line:{line.id}",
        max(day_start, transfer.created_at),
        transfer.amount,
        (Entry(f"bank:{line.account}", transfer.amount), Entry(IN_TRANSIT, -transfer.amount)),
        provenance=STATEMENT,
    )
