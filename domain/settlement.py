"""Settlement: Conekta's transactions and transfers, and the merchant's bank lines, matched to
the ledger; pure. `settle match` posts what `plan` says, each posting once by its key.

One rule per Conekta transaction type (matching is by mode + charge id, + |amount| for refunds):

    type                   matched to                       posts (key)
    capture                the payment of its charge        its fee: fee:<order>:<charge> when
                                                            no fee is booked, else
                                                            fee_adjust:<txn> for the difference;
                                                            another amount than the payment's:
                                                            capture_adjust:<txn> (adjustments)
    refund                 a refund posting of its charge   its fee, as a fee: txn_fee:<txn>
                           with the same |amount|
    chargeback             the chargeback of its charge     |amount| becomes its target (the
                                                            move: chargeback:<id>:adjusted);
                                                            its fee: dispute_fee:<txn>
                                                            (conekta:dispute_fees)
    won_chargeback,        the chargeback's money back      its fee only: txn_fee:<txn>
    chargeback_reversal    (its status says won)
    refund_reversal        a reversed refund of its charge  its fee only: txn_fee:<txn>
    payout                 its transfer (same |amount|,     nothing: never an adjustment
                           nearest in time)
    payout_reversal        the transfer it brings back      payout_reversed:<txn>: in transit
                           (then `reversed`, never landed)  back to the receivable
    rounding_adjustment,   -                                adjustment:<txn>: its net to
    liquidation, any other                                  conekta:adjustments, for review

A transfer: payout:<transfer>:sent (conekta:in_transit +T, conekta:receivable -T); matched to a
bank line (same amount, the line's reference contains its statement_reference, dated within 3
business days of the transfer): payout:<transfer>:landed (bank:<account> +T, in transit -T).
A record no rule explains is listed `unmatched` (nothing is posted, nothing dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from domain import chargeback as chargeback_rules
from domain import ledger
from domain.ledger import RECEIVABLE, Entry, Posting
from domain.money_rows import ChargebackState
from domain.payouts import API, IN_TRANSIT, BankLine, Transfer, bank_line_for, landed, sent

ADJUSTMENTS = "conekta:adjustments"
DISPUTE_FEES = "conekta:dispute_fees"
LEDGER_TZ = ZoneInfo("America/Mexico_City")  # core.settings' default; the caller passes its own
ADJUSTED_TYPES = frozenset({"rounding_adjustment", "liquidation"})
# Postings settle match writes (ledger verify's per-order checks leave them alone)
KINDS = frozenset(
    {
        "fee_adjust",
        "capture_adjust",
        "txn_fee",
        "dispute_fee",
        "payout_sent",
        "payout_landed",
        "payout_reversed",
        "adjustment",
    }
)

MATCHED = "matched"  # explained by postings that exist
POSTED = "posted"  # explained by what this run posts (or posted before)
REVIEW = "review"  # posted to conekta:adjustments: someone looks at it
UNMATCHED = "unmatched"  # nothing explains it yet
IN_FLIGHT = "in_transit"  # a transfer no bank line shows yet
REVERSED = "reversed"  # a transfer Conekta's payout_reversal brought back: it never lands


@dataclass(frozen=True)
class Txn:
    """A Conekta transaction (GET /transactions)."""

    id: str
    livemode: bool
    type: str
    status: str
    amount: int  # signed as the money moves
    fee: int  # commission plus IVA
    net: int
    charge_id: str | None
    currency: str
    created_at: datetime


@dataclass(frozen=True)
class PostedRefund:
    business_key: str
    amount: int
    effective_at: datetime
    reversed: bool = False  # a refund_reversed posting


@dataclass(frozen=True)
class ChargeBook:
    """What the ledger holds for one charge."""

    charge: ledger.Charge
    payment: int | None  # the payment posting's amount; None: no payment posted
    fee_booked: int  # fees and their IVA booked on it (in the payment or postings of their own)
    fee_key_posted: bool  # fee:<order>:<charge> exists
    refunds: tuple[PostedRefund, ...] = ()
    chargeback: ChargebackState | None = None


@dataclass(frozen=True)
class Books:
    charges: Mapping[tuple[bool, str], ChargeBook] = field(default_factory=dict)
    posted: Collection[tuple[bool, str]] = ()  # (livemode, business key) posted already
    landed: Mapping[tuple[bool, str], int] = field(default_factory=dict)  # transfer -> line id
    tax_rate: Decimal = Decimal("0.16")
    tz: ZoneInfo = LEDGER_TZ


@dataclass(frozen=True)
class Item:
    """A record and what explains it."""

    source: str  # transaction, transfer, bank_line
    id: str
    livemode: bool
    type: str
    currency: str
    amount: int
    at: datetime
    state: str  # MATCHED, POSTED, REVIEW, UNMATCHED, IN_FLIGHT
    note: str = ""
    keys: tuple[str, ...] = ()  # the postings that explain it


@dataclass(frozen=True)
class Target:
    """A chargeback's target as Conekta's transaction says (store: chargebacks.conekta_amount)."""

    livemode: bool
    chargeback_id: str
    amount: int


@dataclass(frozen=True)
class FeeLearnt:
    livemode: bool
    charge_id: str
    fee: int


@dataclass
class Match:
    postings: dict[tuple[bool, str], Posting] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    fees: list[FeeLearnt] = field(default_factory=list)
    landed: dict[tuple[bool, str], int] = field(default_factory=dict)  # transfer -> bank line

    def post(self, posting: Posting, posted: Collection[tuple[bool, str]]) -> str:
        """Plan `posting` unless its key is posted already; its key either way (what explains
        the record)."""
        if posting.key not in posted:
            self.postings.setdefault(posting.key, posting)
        return posting.business_key


def plan(
    txns: Sequence[Txn],
    transfers: Sequence[Transfer],
    lines: Sequence[BankLine],
    books: Books,
) -> Match:
    """What explains each record, and the postings still missing; the same records in any order
    give the same answer."""
    match = Match()
    txns = sorted(txns, key=lambda t: (t.created_at, t.id))
    transfers = sorted(transfers, key=lambda t: (t.created_at, t.id))
    refunds = _pair_refunds(txns, books)
    payouts = _pair_payouts(txns, transfers, "payout")
    reversed_ = {
        (t.livemode, t.id) for t in _pair_payouts(txns, transfers, "payout_reversal").values()
    }
    for txn in txns:
        rule = RULES.get(txn.type, _adjustment)
        rule(match, txn, _Context(books, refunds, payouts))
    lines = sorted(lines, key=lambda b: (b.date, b.id))
    _transfers(match, transfers, lines, books, reversed_)
    return match


@dataclass(frozen=True)
class _Context:
    books: Books
    refunds: Mapping[str, PostedRefund]  # txn id -> the refund posting it explains
    payouts: Mapping[str, Transfer]  # payout txn id -> its transfer

    def charge(self, txn: Txn) -> ChargeBook | None:
        if txn.charge_id is None:
            return None
        return self.books.charges.get((txn.livemode, txn.charge_id))


def _item(txn: Txn, state: str, note: str = "", keys: Sequence[str] = ()) -> Item:
    return Item(
        "transaction",
        txn.id,
        txn.livemode,
        txn.type,
        txn.currency,
        txn.amount,
        txn.created_at,
        state,
        note,
        tuple(keys),
    )


def _posting(
    key: str, kind: str, txn: Txn, amount: int, *entries: Entry, book: ChargeBook | None = None
) -> Posting:
    return Posting(
        key,
        kind,
        book.charge.order_id if book else None,
        book.charge.id if book else None,
        txn.currency,
        txn.livemode,
        txn.id,
        txn.created_at,
        abs(amount),
        tuple(e for e in entries if e.amount != 0),
        provenance=API,
    )


def _fee(match: Match, txn: Txn, ctx: _Context, book: ChargeBook | None) -> list[str]:
    """A fee on a transaction that is not a capture or a chargeback: booked as a fee."""
    if txn.fee == 0:
        return []
    entries = ledger.fee_entries(txn.fee, ctx.books.tax_rate)
    posting = _posting(f"txn_fee:{txn.id}", "txn_fee", txn, txn.fee, *entries, book=book)
    return [match.post(posting, ctx.books.posted)]


def _capture(match: Match, txn: Txn, ctx: _Context) -> None:
    book = ctx.charge(txn)
    if book is None or book.payment is None:
        match.items.append(_item(txn, UNMATCHED, "no payment posted for its charge"))
        return
    keys, posted, note = [], ctx.books.posted, ""
    charge = book.charge
    if not book.fee_key_posted and book.fee_booked == 0:
        posting = ledger.fee_posting(charge, txn.fee, ctx.books.tax_rate, txn.id, txn.created_at)
        posting = _with_provenance(posting)
        if txn.fee:
            keys.append(match.post(posting, posted))
            match.fees.append(FeeLearnt(txn.livemode, charge.id, txn.fee))
    elif txn.fee != book.fee_booked:
        diff = txn.fee - book.fee_booked
        entries = ledger.fee_entries(diff, ctx.books.tax_rate)
        key = f"fee_adjust:{txn.id}"
        keys.append(match.post(_posting(key, "fee_adjust", txn, diff, *entries, book=book), posted))
    if txn.amount != book.payment:
        diff = txn.amount - book.payment
        note = f"Conekta captured {txn.amount}, the payment posted {book.payment}"
        entries = (Entry(RECEIVABLE, diff), Entry(ADJUSTMENTS, -diff))
        key = f"capture_adjust:{txn.id}"
        keys.append(
            match.post(_posting(key, "capture_adjust", txn, diff, *entries, book=book), posted)
        )
    match.items.append(_item(txn, REVIEW if note else (POSTED if keys else MATCHED), note, keys))


def _with_provenance(posting: Posting) -> Posting:
    return posting.vouched_by(API)


def _refund(match: Match, txn: Txn, ctx: _Context) -> None:
    """refund, refund_reversal: the refund posting (or its reversal) it was paired with."""
    refund = ctx.refunds.get(txn.id)
    if refund is None:
        match.items.append(_item(txn, UNMATCHED, "no refund of that amount posted on its charge"))
        return
    keys = [refund.business_key, *_fee(match, txn, ctx, ctx.charge(txn))]
    match.items.append(_item(txn, POSTED if len(keys) > 1 else MATCHED, keys=keys))


def _chargeback(match: Match, txn: Txn, ctx: _Context) -> None:
    book = ctx.charge(txn)
    state = book.chargeback if book else None
    if book is None or state is None:
        match.items.append(_item(txn, UNMATCHED, "no chargeback known on its charge"))
        return
    row, target = state.row, abs(txn.amount)
    keys, posted = [ledger.chargeback_key(row.id, "opened")], ctx.books.posted
    moves = chargeback_rules.moves(
        state.held, row.conekta_status, target, posted_before=state.postings > 0
    )
    for move in moves:
        number = state.postings + 1 if move.step in state.steps else None
        key = ledger.chargeback_key(row.id, move.step, number)
        at = max(txn.created_at, row.opened_at)
        posting = _with_provenance(ledger.chargeback(key, move, book.charge, txn.id, at))
        keys.append(match.post(posting, posted))
        state = state.after(move)
    if row.conekta_amount != target:
        match.targets.append(Target(row.livemode, row.id, target))
    if txn.fee:
        entries = (Entry(RECEIVABLE, -txn.fee), Entry(DISPUTE_FEES, txn.fee))
        fee = _posting(f"dispute_fee:{txn.id}", "dispute_fee", txn, txn.fee, *entries, book=book)
        keys.append(match.post(fee, posted))
    match.items.append(_item(txn, POSTED if len(keys) > 1 else MATCHED, keys=keys))


def _chargeback_back(match: Match, txn: Txn, ctx: _Context) -> None:
    """won_chargeback, chargeback_reversal: Conekta gave the withheld money back."""
    book = ctx.charge(txn)
    state = book.chargeback if book else None
    if book is None or state is None:
        match.items.append(_item(txn, UNMATCHED, "no chargeback known on its charge"))
        return
    if chargeback_rules.rule(state.row.conekta_status).money != chargeback_rules.RETURNED:
        note = f"the chargeback is {state.row.conekta_status} in the ledger: no won event yet"
        match.items.append(_item(txn, UNMATCHED, note))
        return
    keys = [ledger.chargeback_key(state.row.id, "won"), *_fee(match, txn, ctx, book)]
    match.items.append(_item(txn, POSTED if len(keys) > 1 else MATCHED, keys=keys))


def _payout(match: Match, txn: Txn, ctx: _Context) -> None:
    transfer = ctx.payouts.get(txn.id)
    if transfer is None:
        match.items.append(_item(txn, UNMATCHED, "no transfer of that amount"))
        return
    keys = [f"payout:{transfer.id}:sent", *_fee(match, txn, ctx, None)]
    match.items.append(_item(txn, POSTED if len(keys) > 1 else MATCHED, keys=keys))


def _payout_reversal(match: Match, txn: Txn, ctx: _Context) -> None:
    entries = (Entry(RECEIVABLE, abs(txn.amount)), Entry(IN_TRANSIT, -abs(txn.amount)))
    posting = _posting(f"payout_reversed:{txn.id}", "payout_reversed", txn, txn.amount, *entries)
    keys = [match.post(posting, ctx.books.posted), *_fee(match, txn, ctx, None)]
    match.items.append(_item(txn, POSTED, "a payout came back", keys))


def _adjustment(match: Match, txn: Txn, ctx: _Context) -> None:
    """rounding_adjustment, liquidation and any type no rule knows: its net to adjustments."""
    entries = (Entry(RECEIVABLE, txn.net), Entry(ADJUSTMENTS, -txn.net))
    book = ctx.charge(txn)
    posting = _posting(f"adjustment:{txn.id}", "adjustment", txn, txn.net, *entries, book=book)
    note = "" if txn.type in ADJUSTED_TYPES else f"unknown type {txn.type!r}"
    keys = [match.post(posting, ctx.books.posted)] if txn.net else []
    match.items.append(_item(txn, REVIEW, note or "Conekta's adjustment", keys))


Rule = Callable[[Match, Txn, _Context], None]
RULES: dict[str, Rule] = {
    "capture": _capture,
    "refund": _refund,
    "refund_reversal": _refund,  # paired with a reversed refund posting (_pair_refunds)
    "chargeback": _chargeback,
    "won_chargeback": _chargeback_back,
    "chargeback_reversal": _chargeback_back,
    "payout": _payout,
    "payout_reversal": _payout_reversal,
}


def _pair_refunds(txns: Sequence[Txn], books: Books) -> dict[str, PostedRefund]:
    """Each refund (reversal) transaction with one refund posting of its charge of the same
    |amount|, oldest with oldest."""
    pairs: dict[str, PostedRefund] = {}
    used: set[str] = set()
    for txn in txns:
        if txn.type not in ("refund", "refund_reversal") or txn.charge_id is None:
            continue
        book = books.charges.get((txn.livemode, txn.charge_id))
        wanted_reversed = txn.type == "refund_reversal"
        for refund in sorted(
            book.refunds if book else (), key=lambda r: (r.effective_at, r.business_key)
        ):
            if (
                refund.business_key not in used
                and refund.reversed == wanted_reversed
                and refund.amount == abs(txn.amount)
            ):
                used.add(refund.business_key)
                pairs[txn.id] = refund
                break
    return pairs


def _pair_payouts(
    txns: Sequence[Txn], transfers: Sequence[Transfer], kind: str
) -> dict[str, Transfer]:
    """Each payout (or payout_reversal) transaction with the transfer of its |amount| nearest in
    time (each once; a reversal only with a transfer sent before it)."""
    pairs: dict[str, Transfer] = {}
    used: set[tuple[bool, str]] = set()
    for txn in txns:
        if txn.type != kind:
            continue
        candidates = [
            t
            for t in transfers
            if (t.livemode, t.id) not in used
            and t.livemode == txn.livemode
            and t.currency == txn.currency
            and t.amount == abs(txn.amount)
            and (kind == "payout" or t.created_at <= txn.created_at)
        ]
        if candidates:
            best = min(candidates, key=lambda t: (abs(t.created_at - txn.created_at), t.id))
            used.add((best.livemode, best.id))
            pairs[txn.id] = best
    return pairs


def _transfers(
    match: Match,
    transfers: Sequence[Transfer],
    lines: Sequence[BankLine],
    books: Books,
    reversed_: Collection[tuple[bool, str]],
) -> None:
    used = set(books.landed.values())
    for transfer in transfers:
        keys = [match.post(sent(transfer), books.posted)]
        landed_line = books.landed.get((transfer.livemode, transfer.id))
        line = None
        if landed_line is None and (transfer.livemode, transfer.id) in reversed_:
            match.items.append(
                _transfer_item(transfer, REVERSED, "came back: payout_reversal", keys)
            )
            continue
        if landed_line is None:
            line = bank_line_for(transfer, [b for b in lines if b.id not in used], books.tz)
            if line is not None:
                used.add(line.id)
                match.landed[(transfer.livemode, transfer.id)] = line.id
                keys.append(match.post(landed(transfer, line, books.tz), books.posted))
        else:
            keys.append(f"payout:{transfer.id}:landed")
            match.landed[(transfer.livemode, transfer.id)] = landed_line
        state = POSTED if landed_line is None and line is not None else MATCHED
        if landed_line is None and line is None:
            state = IN_FLIGHT
        note = "no bank line shows it yet" if state == IN_FLIGHT else ""
        match.items.append(_transfer_item(transfer, state, note, keys))


def _transfer_item(transfer: Transfer, state: str, note: str, keys: Sequence[str]) -> Item:
    return Item(
        "transfer",
        transfer.id,
        transfer.livemode,
        "transfer",
        transfer.currency,
        transfer.amount,
        transfer.created_at,
        state,
        note,
        tuple(keys),
    )
