"""What each transfer paid; pure.

Conekta links no transaction to the transfer that paid it out, so the report says its rule:
a transfer paid the transactions of its mode and currency that Conekta marks paid out (status
`paid_out` or `transferred`) and that were created after the previous transfer and up to it.
Their amounts, by kind, and their fees (commission and IVA, split as the ledger splits them; a
chargeback's fee counts with the chargebacks, as the ledger books it whole on
conekta:dispute_fees) sum to the transfer; a `difference` other than 0 says the rule did not
explain it all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from domain import fee as fee_rules
from domain.payouts import Transfer
from domain.settlement import Txn

RULE = (
    "a transfer paid the transactions of its mode and currency that Conekta marks paid out"
    " (paid_out, transferred) created after the previous transfer and up to it"
)
PAID_OUT = frozenset({"paid_out", "transferred"})
NOT_PAID_BY = frozenset({"payout", "payout_reversal"})  # the transfers themselves
GROUPS = {
    "capture": "charges",
    "refund": "refunds",
    "refund_reversal": "refunds",
    "chargeback": "chargebacks",
    "won_chargeback": "chargebacks",
    "chargeback_reversal": "chargebacks",
}
COLUMNS = ("charges", "refunds", "chargebacks", "fees", "tax", "adjustments")


@dataclass(frozen=True)
class Paid:
    transfer: Transfer
    since: datetime | None  # the previous transfer's created_at
    sums: dict[str, int]  # COLUMNS
    transactions: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(self.sums.values())

    @property
    def difference(self) -> int:
        return self.transfer.amount - self.total


def paid_by(transfers: Sequence[Transfer], txns: Sequence[Txn], tax_rate: Decimal) -> list[Paid]:
    """Every transfer with what it paid, oldest first."""
    result = []
    ordered = sorted(transfers, key=lambda t: (t.created_at, t.id))
    for n, transfer in enumerate(ordered):
        before = [
            t
            for t in ordered[:n]
            if t.livemode == transfer.livemode and t.currency == transfer.currency
        ]
        since = before[-1].created_at if before else None
        paid = [
            t
            for t in txns
            if t.livemode == transfer.livemode
            and t.currency == transfer.currency
            and t.status in PAID_OUT
            and t.type not in NOT_PAID_BY
            and (since is None or t.created_at > since)
            and t.created_at <= transfer.created_at
        ]
        result.append(Paid(transfer, since, _sums(paid, tax_rate), tuple(t.id for t in paid)))
    return result


def _sums(txns: Sequence[Txn], tax_rate: Decimal) -> dict[str, int]:
    sums = dict.fromkeys(COLUMNS, 0)
    for txn in txns:
        group = GROUPS.get(txn.type)
        if group is None:
            sums["adjustments"] += txn.net  # Conekta's own adjustment, its fee inside
            continue
        sums[group] += txn.amount
        if txn.type == "chargeback":
            sums[group] -= txn.fee  # conekta:dispute_fees, not split
            continue
        commission, tax = fee_rules.split(txn.fee, tax_rate)
        sums["fees"] -= commission
        sums["tax"] -= tax
    return sums
