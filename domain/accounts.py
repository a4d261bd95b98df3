"""The chart of accounts: what each account the ledger writes is, for an accountant; pure.

An account's name says what it is by a declared pattern: an exact name (`conekta:receivable`) or
a prefix ending in ':' (`customer:` for `customer:<key>`). A new account takes the type of its
pattern when it is first written (the store declares it in `accounts`, which every entry and
balance must name); a name no pattern knows is a bug and is refused, never guessed. The normal
side follows from the type: assets and expenses grow on the debit side, liabilities, equity and
revenue on the credit side. Names never change (merchants' reports and alerts use them).
Types are from the merchant's books (the ledger is theirs, not Conekta's).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from core.errors import UnknownAccount


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"


DEBIT = "debit"
CREDIT = "credit"


def normal_side(account_type: AccountType) -> str:
    return DEBIT if account_type in {AccountType.ASSET, AccountType.EXPENSE} else CREDIT


@dataclass(frozen=True)
class Pattern:
    name: str  # an exact account name, or a prefix ending in ':'
    type: AccountType
    meaning: str  # for an accountant (the README's table says the same)

    @property
    def is_prefix(self) -> bool:
        return self.name.endswith(":")

    def matches(self, account: str) -> bool:
        if self.is_prefix:
            return account.startswith(self.name) and len(account) > len(self.name)
        return account == self.name


CHART = (
    Pattern(
        "conekta:receivable",
        AccountType.ASSET,
        "what Conekta owes the merchant: payments less fees, refunds and withheld chargebacks,"
        " not yet paid out; negative: the merchant owes Conekta",
    ),
    Pattern(
        "conekta:disputed",
        AccountType.ASSET,
        "money Conekta withholds while a chargeback is open; it returns to the receivable when"
        " the chargeback is won, or goes back to the customer when it is lost",
    ),
    Pattern(
        "conekta:in_transit",
        AccountType.ASSET,
        "payouts Conekta has sent and the bank has not yet shown",
    ),
    Pattern(
        "tax:vat_on_fees",
        AccountType.ASSET,
        "IVA (VAT) charged on Conekta's fees, which the merchant can credit",
    ),
    Pattern("bank:", AccountType.ASSET, "the merchant's bank account <name>"),
    Pattern(
        "conekta:fees",
        AccountType.EXPENSE,
        "Conekta's commission (with its IVA where the fee is not split)",
    ),
    Pattern(
        "conekta:dispute_fees",
        AccountType.EXPENSE,
        "what Conekta charges for handling chargebacks",
    ),
    Pattern(
        "conekta:adjustments",
        AccountType.EXPENSE,
        "Conekta's own adjustments to the merchant's balance (a credit balance: in the"
        " merchant's favour)",
    ),
    Pattern(
        "customer:",
        AccountType.REVENUE,
        "sales to customer <key> (a Conekta customer id or an e-mail): what they paid, less"
        " refunds and lost chargebacks",
    ),
)


@dataclass(frozen=True)
class Account:
    name: str
    type: AccountType

    @property
    def normal_side(self) -> str:
        return normal_side(self.type)


@functools.lru_cache(maxsize=2**16)  # every batch declares its accounts: one per customer
def pattern_of(name: str) -> Pattern:
    """The chart's pattern for an account name (an exact name wins over a prefix)."""
    exact = [p for p in CHART if not p.is_prefix and p.matches(name)]
    prefixed = sorted(
        (p for p in CHART if p.is_prefix and p.matches(name)), key=lambda p: -len(p.name)
    )
    for pattern in exact + prefixed:
        return pattern
    raise UnknownAccount(f"account {name!r} is not in the chart of accounts (domain/accounts.py)")


def declare(name: str) -> Account:
    return Account(name, pattern_of(name).type)


def reading(name: str, balance: int) -> str:
    """How to read a balance signed to its account's normal side when it is negative: what
    Conekta holds for the merchant below zero is owed to Conekta; '' when it reads as it is."""
    if balance >= 0:
        return ""
    account = declare(name)
    if account.type is AccountType.ASSET and name.startswith("conekta:"):
        return "owed to Conekta"
    return f"against its normal side ({account.normal_side})"
