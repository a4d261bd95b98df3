"""Settlement's reads: `settle match` (what explains each record, what is still to post; with
`apply`, posting it) and `settle verify` (the four invariants). The worker runs verify after each
scheduled pull (its metrics feed the alerts); ops/settlement.py hands both to the CLI and the
console.

`match` reads Conekta's records and the bank lines, and in one transaction holding the settle
lock (the orders of the charges it touches locked as the apply path locks them) reads what the
ledger holds, plans (domain/settlement.py) and, with `apply`, posts. A second run posts nothing:
every posting has its own business key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from core.database import Record
from domain import payouts
from domain import settlement as rules
from domain.ledger import Posting
from store import Store

INVARIANTS = (1, 2, 3, 4)
OLDER_THAN = timedelta(days=3)  # invariant 2: a ledger movement older than this has its record


def txn_of(row: Record) -> rules.Txn:
    return rules.Txn(
        row["id"],
        row["livemode"],
        row["type"],
        row["status"],
        row["amount"],
        row["fee"],
        row["net"],
        row["charge_id"],
        row["currency"],
        row["created_at"],
    )


def transfer_of(row: Record) -> payouts.Transfer:
    return payouts.Transfer(
        row["id"],
        row["livemode"],
        row["amount"],
        row["currency"],
        row["status"],
        row["statement_reference"],
        row["created_at"],
    )


def line_of(row: Record) -> payouts.BankLine:
    return payouts.BankLine(
        row["id"],
        row["account"],
        row["date"],
        row["amount"],
        row["currency"],
        row["reference"],
        row["description"],
    )


@dataclass(frozen=True)
class Records:
    txns: list[rules.Txn]
    transfers: list[payouts.Transfer]
    lines: list[payouts.BankLine]


async def records(store: Store, livemode: bool | None = None) -> Records:
    return Records(
        [txn_of(r) for r in await store.settlement.transactions(livemode)],
        [transfer_of(r) for r in await store.settlement.transfers(livemode)],
        [line_of(r) for r in await store.settlement.bank_lines()],
    )


@dataclass
class MatchResult:
    applied: bool
    match: rules.Match

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for item in self.match.items:
            counts[item.state] = counts.get(item.state, 0) + 1
        return {
            "applied": self.applied,
            "postings": [posting_view(p) for p in self.match.postings.values()],
            "counts": counts,
            "items": [item_view(i) for i in self.match.items],
        }


def posting_view(posting: Posting) -> dict[str, Any]:
    return {
        "business_key": posting.business_key,
        "kind": posting.kind,
        "livemode": posting.livemode,
        "currency": posting.currency,
        "effective_at": posting.effective_at.isoformat(),
        "amount": posting.amount,
        "order_id": posting.order_id,
        "charge_id": posting.charge_id,
        "entries": {e.account: e.amount for e in posting.entries},
    }


def item_view(item: rules.Item) -> dict[str, Any]:
    return {
        "source": item.source,
        "id": item.id,
        "livemode": item.livemode,
        "type": item.type,
        "currency": item.currency,
        "amount": item.amount,
        "at": item.at.isoformat(),
        "state": item.state,
        "note": item.note,
        "keys": list(item.keys),
    }


async def match(
    store: Store, *, apply: bool, tax_rate: Decimal, tz: ZoneInfo, livemode: bool | None = None
) -> MatchResult:
    """What explains each record and what is still to post; with `apply`, posts it."""
    found = await records(store, livemode)
    charge_ids = sorted({t.charge_id for t in found.txns if t.charge_id})
    transfer_ids = sorted({t.id for t in found.transfers})
    async with store.settlement.matching(apply=apply) as session:
        # First without posted keys: which keys could this run post; then with them.
        books = await session.books(charge_ids, transfer_ids, [], tax_rate=tax_rate, tz=tz)
        draft = rules.plan(found.txns, found.transfers, found.lines, books)
        keys = [key for _, key in draft.postings]
        books = await session.books(charge_ids, transfer_ids, keys, tax_rate=tax_rate, tz=tz)
        planned = rules.plan(found.txns, found.transfers, found.lines, books)
        if apply:
            await session.write(planned)
    return MatchResult(apply, planned)


@dataclass
class Broken:
    invariant: int
    what: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerifyResult:
    broken: list[Broken]
    balances: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.broken

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "broken": [
                {"invariant": b.invariant, "what": b.what, **b.details} for b in self.broken
            ],
            "balances": self.balances,
        }


BALANCE_COMPARED = ("available", "pending", "retained")
BALANCE_SHOWN = (
    "temporarily_retained",
    "conekta_retention",
    "cashout_retention_amount",
    "retention_amount",
    "gateway",
)


def by_currency(raw: Any, field_name: str) -> dict[str, int]:
    """One field of a balance_response ([{amount, currency}]) per currency."""
    totals: dict[str, int] = {}
    entries = raw.get(field_name) if isinstance(raw, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("amount"), int):
            currency = str(entry.get("currency") or "MXN").upper()
            totals[currency] = totals.get(currency, 0) + entry["amount"]
    return totals


async def invariant_balance(
    store: Store, livemode: bool
) -> tuple[list[Broken], list[dict[str, Any]]]:
    """1. At the last balance snapshot: receivable + disputed = available + pending + retained."""
    snapshots = [s for s in await store.settlement.last_balances() if s["livemode"] == livemode]
    if not snapshots:
        return [], []
    snapshot = snapshots[0]
    raw = _json(snapshot["raw"])
    held = await store.settlement.held_at(livemode, snapshot["taken_at"])
    fields = {name: by_currency(raw, name) for name in (*BALANCE_COMPARED, *BALANCE_SHOWN)}
    currencies = sorted(set(held) | {c for name in BALANCE_COMPARED for c in fields[name]})
    broken, shown = [], []
    for currency in currencies:
        conekta = sum(fields[name].get(currency, 0) for name in BALANCE_COMPARED)
        row = {
            "livemode": livemode,
            "currency": currency,
            "taken_at": snapshot["taken_at"].isoformat(),
            "ledger": held.get(currency, 0),
            "conekta": conekta,
            **{name: fields[name].get(currency, 0) for name in (*BALANCE_COMPARED, *BALANCE_SHOWN)},
        }
        shown.append(row)
        if row["ledger"] != conekta:
            what = (
                f"{currency} ({'live' if livemode else 'test'}): ledger receivable + disputed"
                f" {row['ledger']} != Conekta's available + pending + retained {conekta}"
            )
            broken.append(Broken(1, what, row))
    return broken, shown


async def verify(
    store: Store, *, now: datetime, tax_rate: Decimal, tz: ZoneInfo, livemode: bool
) -> VerifyResult:
    """The four invariants (README "Settlement"); each broken one listed with what breaks it."""
    broken, balances = await invariant_balance(store, livemode)
    result = await match(store, apply=False, tax_rate=tax_rate, tz=tz, livemode=livemode)
    broken += await _explained(store, result.match, now, livemode)
    found = await records(store, livemode)
    statements = await store.settlement.statements()
    broken += _in_transit(result.match, found, statements, tz)
    broken += _one_to_one(found)
    return VerifyResult(broken, balances)


async def _explained(
    store: Store, planned: rules.Match, now: datetime, livemode: bool
) -> list[Broken]:
    """2. Ledger movements older than 3 days have their Conekta transaction; every Conekta
    transaction has its posting or an adjustment (nothing left for `settle match` to post)."""
    broken = []
    if await store.settlement.transactions(livemode):
        for row in await store.settlement.ledger_without_transaction(livemode, now - OLDER_THAN):
            what = f"{row['kind']} {row['business_key']}: no Conekta transaction for it"
            broken.append(Broken(2, what, {"business_key": row["business_key"]}))
    for item in planned.items:
        if item.source != "transaction":
            continue
        missing = [k for k in item.keys if (item.livemode, k) in planned.postings]
        if item.state == rules.UNMATCHED:
            broken.append(Broken(2, f"{item.type} {item.id}: {item.note}", item_view(item)))
        elif missing:
            what = f"{item.type} {item.id}: not posted yet ({', '.join(missing)})"
            broken.append(Broken(2, what, item_view(item)))
    return broken


def _in_transit(
    planned: rules.Match, found: Records, statements: Sequence[Record], tz: ZoneInfo
) -> list[Broken]:
    """3. No transfer whose bank date an imported statement covers stays in transit longer
    than 3 business days."""
    covered_to = max((s["last_date"] for s in statements), default=None)
    if covered_to is None:
        return []
    settled = (rules.MATCHED, rules.REVERSED)  # landed as the ledger holds it, or came back
    landed = {i.id for i in planned.items if i.source == "transfer" and i.state in settled}
    broken = []
    for transfer in found.transfers:
        due = payouts.business_days_after(
            transfer.created_at.astimezone(tz).date(), payouts.BANK_DAYS
        )
        if transfer.id not in landed and due <= covered_to:
            what = (
                f"transfer {transfer.id} ({transfer.amount} {transfer.currency}) in transit"
                f" past {due.isoformat()}, and the statements cover up to {covered_to.isoformat()}"
            )
            broken.append(Broken(3, what, {"transfer": transfer.id, "due": due.isoformat()}))
    return broken


def _one_to_one(found: Records) -> list[Broken]:
    """4. Transfers and the bank lines whose reference carries a statement_reference match one
    to one, amounts exact."""
    broken = []
    references = {t.statement_reference: t for t in found.transfers if t.statement_reference}
    for line in found.lines:
        carried = [t for ref, t in references.items() if ref in line.reference]
        for transfer in carried:
            if line.amount != transfer.amount:
                what = (
                    f"bank line {line.id} ({line.date}, {line.reference!r}) shows"
                    f" {line.amount}, transfer {transfer.id} sent {transfer.amount}"
                )
                broken.append(Broken(4, what, {"line": line.id, "transfer": transfer.id}))
    used: dict[str, list[int]] = {}
    for line in found.lines:
        for ref, transfer in references.items():
            if ref in line.reference and line.amount == transfer.amount:
                used.setdefault(transfer.id, []).append(line.id)
    for transfer_id, lines in used.items():
        if len(lines) > 1:
            what = f"transfer {transfer_id} is shown by {len(lines)} bank lines {lines}"
            broken.append(Broken(4, what, {"transfer": transfer_id, "lines": lines}))
    return broken


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
