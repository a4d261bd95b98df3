"""An independent model of a merchant's money at Conekta, for settlement's tests.

Written from Conekta's side, not from domain/settlement.py: it keeps Conekta's buckets and
emits the records Conekta's API would list (transaction_response, transfers_response,
balance_response), so the tests can compare the ledger with what this model says Conekta holds.

    capture           pending (not yet settled) or available: +amount - fee
    refund            available: -amount - fee
    chargeback        available: -amount - fee; retained: +amount (withheld while disputed)
    won_chargeback    retained: -amount; available: +amount
    lost chargeback   retained: -amount (gone to the cardholder; no transaction assumed)
    rounding etc.     available: +net
    payout            a transfer of everything available; each available transaction becomes
                      paid_out; available: -amount (a payout transaction and a transfer)
    settle            pending captures become available
    payout_reversal   a transfer the bank refused: available +amount (the transfer fails)

Every amount is integer cents; `total()` is available + pending + retained.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}{next(_ids):020x}"


@dataclass
class ConektaAccount:
    livemode: bool = False
    currency: str = "MXN"
    transactions: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    available: int = 0
    pending: int = 0
    retained: int = 0

    def _txn(
        self, kind: str, amount: int, fee: int, at: int, charge: str | None, status: str
    ) -> dict[str, Any]:
        record = {
            "id": _id("txn_"),
            "object": "transaction",
            "type": kind,
            "status": status,
            "amount": amount,
            "fee": fee,
            "net": amount - fee,
            "charge": charge,
            "currency": self.currency,
            "livemode": self.livemode,
            "created_at": at,
        }
        self.transactions.append(record)
        return record

    def capture(
        self, charge: str, amount: int, fee: int, at: int, *, pending: bool = False
    ) -> dict[str, Any]:
        if pending:
            self.pending += amount - fee
        else:
            self.available += amount - fee
        return self._txn("capture", amount, fee, at, charge, "pending" if pending else "available")

    def refund(self, charge: str, amount: int, at: int, fee: int = 0) -> dict[str, Any]:
        self.available -= amount + fee
        return self._txn("refund", -amount, fee, at, charge, "available")

    def chargeback(self, charge: str, amount: int, fee: int, at: int) -> dict[str, Any]:
        self.available -= amount + fee
        self.retained += amount
        return self._txn("chargeback", -amount, fee, at, charge, "available")

    def won(self, charge: str, amount: int, at: int) -> dict[str, Any]:
        self.retained -= amount
        self.available += amount
        return self._txn("won_chargeback", amount, 0, at, charge, "available")

    def lose(self, amount: int) -> None:
        """A chargeback lost: what was withheld goes to the cardholder (no transaction of the
        merchant's is documented for it: an assumption)."""
        self.retained -= amount

    def adjust(self, kind: str, amount: int, at: int) -> dict[str, Any]:
        self.available += amount
        return self._txn(kind, amount, 0, at, None, "available")

    def settle(self) -> None:
        """Pending captures become available."""
        for record in self.transactions:
            if record["status"] == "pending":
                record["status"] = "available"
                self.pending -= record["net"]
                self.available += record["net"]

    def payout(self, at: int, reference: str) -> dict[str, Any] | None:
        """A transfer of everything available (none when nothing positive is)."""
        if self.available <= 0:
            return None
        amount = self.available
        for record in self.transactions:
            if record["status"] == "available":
                record["status"] = "paid_out"
        self.available = 0
        self._txn("payout", -amount, 0, at, None, "paid_out")
        transfer = {
            "id": _id("tr_"),
            "object": "transfer",
            "amount": amount,
            "currency": self.currency,
            "status": "paid",
            "statement_reference": reference,
            "statement_description": f"Conekta {reference}",
            "method": {"type": "BankTransferPayoutMethod", "bank": "BBVA"},
            "livemode": self.livemode,
            "created_at": at,
        }
        self.transfers.append(transfer)
        return transfer

    def reverse(self, transfer: dict[str, Any], at: int) -> dict[str, Any]:
        """A transfer the bank refused: its money comes back to available."""
        transfer["status"] = "failed"
        self.available += transfer["amount"]
        return self._txn("payout_reversal", transfer["amount"], 0, at, None, "available")

    def total(self) -> int:
        return self.available + self.pending + self.retained

    def balance(self) -> dict[str, Any]:
        def money(amount: int) -> list[dict[str, Any]]:
            return [{"amount": amount, "currency": self.currency}]

        return {
            "available": money(self.available),
            "pending": money(self.pending),
            "retained": money(self.retained),
            "temporarily_retained": money(0),
            "conekta_retention": money(0),
            "cashout_retention_amount": money(0),
            "retention_amount": money(0),
            "gateway": money(0),
        }
