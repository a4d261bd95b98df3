"""The write path: a batch of order events planned by the domain and written in one transaction
(orders, ledger postings, charges, refunds, chargebacks, reconcile flags, archive, outbox).

Lock order, the same in every transaction, so concurrent workers cannot deadlock: existing
orders by (id, mode), then new orders by (id, mode) (insert), then the period lock (shared: a
`ledger close` takes it alone), then new accounts by name, then balances by (account, currency,
mode).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from core import database
from core.database import Connection, Pool, Record
from core.errors import ConektaIngestError, TransientDatabaseError
from domain import accounts, ledger, periods
from domain.archive import ArchiveRow
from domain.chargeback import Held
from domain.fee import DEFAULT_TAX_RATE
from domain.fulfillment import OrderView
from domain.ledger import Posting
from domain.money_rows import ChargebackRow, ChargebackState, ReconcileFlag, RefundRow
from domain.order_event import OrderEvent
from domain.order_state import OrderState
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Booked, Incoming, Plan, plan_batch
from store import sql
from store.events import write_archive

# ORDER_COLUMNS, POSTING_COLUMNS and CHARGE_COLUMNS: the positions of the fields in the JSON rows
# of those writes (sql.rows_json; their queries read them by position); the others name the
# unnest(...) parameters of theirs (sql.columns).
ORDER_COLUMNS = (
    "id",
    "status",
    "amount",
    "currency",
    "customer_key",
    "livemode",
    "last_event_id",
    "last_event_created_at",
)
POSTING_COLUMNS = (
    "business_key",
    "kind",
    "order_id",
    "charge_id",
    "currency",
    "livemode",
    "event_id",
    "effective_at",
    "amount",
    "occurred_at",
    "provenance",
)
CHARGEBACK_COLUMNS = (
    "id",
    "livemode",
    "charge_id",
    "order_id",
    "status",
    "amount",
    "currency",
    "last_event_id",
    "last_event_created_at",
    "conekta_status",
    "opened_at",
)
CHARGE_COLUMNS = (
    "livemode",
    "id",
    "order_id",
    "amount",
    "currency",
    "customer_key",
    "fee",
    "paid_at",
)
REFUND_COLUMNS = (
    "livemode",
    "id",
    "charge_id",
    "order_id",
    "amount",
    "currency",
    "status",
    "created_at",
    "last_event_id",
)
FLAG_COLUMNS = ("livemode", "order_id", "reason", "event_id")
OUTBOX_COLUMNS = ("message_id", "routing_key", "body")
# Shared by every batch that posts, taken alone by `ledger close`: a close waits for the batches
# in flight, and the next ones book by the new boundary (store/queries/periods.sql).
PERIOD_LOCK = 0x706572696F64  # "period"


class ConcurrentOrderInsert(TransientDatabaseError):
    """Another worker created one of our new orders first: retry and see its state."""


@dataclass(frozen=True)
class Applied:
    """What a committed batch did: an outcome per item, in order, and what the caller reports:
    the events the domain found contradicting a payment (an unpaid order's ending), paying more
    than their order (applied), and the orders flagged for reconcile (a list said has_more)."""

    outcomes: list[Outcome]
    contradictions: list[OrderEvent]
    overpaid: list[OrderEvent] = field(default_factory=list)
    flags: list[ReconcileFlag] = field(default_factory=list)
    # isolate=True: the events left out, by index in the batch, with why (outcomes: the others)
    failed: dict[int, ConektaIngestError] = field(default_factory=dict)

    @classmethod
    def of(cls, plan: Plan) -> Applied:
        return cls(plan.outcomes, plan.contradictions, plan.overpaid, plan.flags, plan.failed)


class Apply(sql.Room):
    def __init__(self, pool: Pool, fee_tax_rate: Decimal = DEFAULT_TAX_RATE) -> None:
        super().__init__(pool)
        self.fee_tax_rate = fee_tax_rate  # CONEKTA_FEE_TAX_RATE: how each fee posting splits

    async def batch(
        self,
        items: Sequence[Incoming],
        *,
        replay: bool = False,
        modes: Collection[bool] = ALL_MODES,
        isolate: bool = False,
    ) -> Applied:
        """Plan and write a batch; its outcomes once committed.

        `replay` re-applies events already in the archive (after a fix, or to rebuild
        projections): the id check is skipped; order rules and business keys keep it idempotent.
        `modes`: the livemodes accepted (CONEKTA_ACCEPT_MODES); others are archived `other_mode`.
        `isolate`: an event that cannot be decided is left out (`Applied.failed`) and the rest
        written; else its error is raised and nothing is.
        """
        async with database.transaction(self.pool) as connection:
            plan = await _apply_batch(
                connection,
                items,
                replay=replay,
                modes=modes,
                fee_tax_rate=self.fee_tax_rate,
                isolate=isolate,
            )
        return Applied.of(plan)

    async def rejudge(
        self,
        items: Sequence[Incoming],
        rows: Sequence[ArchiveRow],
        modes: Collection[bool] = ALL_MODES,
    ) -> Applied:
        """`invalid` archive rows judged again, in one transaction: `items` go
        through the order path (as a replay: their ids are archived already), `rows` (still
        invalid, or ignored) are archived; each archive row takes its new outcome and reason.
        The outcomes of `items`, in order."""
        async with database.transaction(self.pool) as connection:
            plan = await _apply_batch(
                connection, items, replay=True, modes=modes, fee_tax_rate=self.fee_tax_rate
            )
            await write_archive(connection, rows)
        return Applied.of(plan)


async def _apply_batch(
    connection: Connection,
    items: Sequence[Incoming],
    *,
    replay: bool,
    modes: Collection[bool],
    fee_tax_rate: Decimal,
    isolate: bool = False,
) -> Plan:
    """Plan and write a batch (in the caller's transaction)."""
    booked = await _load(connection, items, replay=replay)
    plan = plan_batch(items, booked, modes, fee_tax_rate, isolate=isolate)
    await _write_orders(connection, plan)
    await write_postings(connection, list(plan.postings.values()))
    await _write_money_rows(connection, plan)
    await _write_chargebacks(connection, plan)
    await write_archive(connection, plan.archive)
    await _write_outbox(connection, plan)
    return plan


async def _load(connection: Connection, items: Sequence[Incoming], *, replay: bool) -> Booked:
    """Lock the batch's orders and read what the plan needs; charges are resolved first, so the
    orders of chargebacks (which name only a charge) are locked too."""
    events = [item.event for item in items]
    # Every charge the batch names: its payment may be booked (and its fee known), its refunds
    # and chargebacks move together.
    named = {e.charge_id for e in events if e.charge_id}
    charge_ids = sorted(named | {c.id for e in events for c in e.paid_charges})
    rows = await sql.fetch(connection, "charge_rows", ids=charge_ids)
    charges = {(r["livemode"], r["id"]): ledger.Charge(**dict(r)) for r in rows}
    order_keys = sorted(
        {(e.order_id, e.livemode) for e in events if e.order_id}
        | {(c.order_id, c.livemode) for c in charges.values()}
    )
    orders = await sql.fetch(
        connection,
        "lock_orders",
        ids=[k[0] for k in order_keys],
        livemodes=[k[1] for k in order_keys],
    )
    archived: list[str] = []
    if not replay:
        rows = await sql.fetch(connection, "archived_event_ids", ids=[e.event_id for e in events])
        archived = [row["event_id"] for row in rows]
    known = {_key(r) for r in orders}
    candidates = _candidate_keys(
        [i for i in items if (i.event.livemode, i.event.order_id) in known]
    )
    keys = await sql.fetch(connection, "booked_keys", keys=sorted(candidates))
    refunds = await sql.fetch(connection, "refund_rows", charge_ids=charge_ids)
    return Booked(
        orders={_key(r): _state(r) for r in orders},
        archived_ids=archived,
        keys={(r["livemode"], r["business_key"]) for r in keys},
        charges=charges,
        chargebacks=await _chargebacks(connection, events, charge_ids),
        order_views={
            _key(r): OrderView(
                r["id"], r["status"], r["amount"], r["currency"], r["customer_key"], r["livemode"]
            )
            for r in orders
        },
        refunds={(r["livemode"], r["id"]): RefundRow(**dict(r)) for r in refunds},
    )


def _key(row: Record) -> tuple[bool, str]:
    """An order's or a chargeback's key in the plan: (livemode, id)."""
    return (row["livemode"], row["id"])


async def _chargebacks(
    connection: Connection, events: Sequence[OrderEvent], charge_ids: Sequence[str]
) -> dict[tuple[bool, str], ChargebackState]:
    """The batch's chargebacks and those of its charges, with what their postings hold."""
    ids = sorted({e.chargeback.id for e in events if e.chargeback})
    rows = await sql.fetch(connection, "chargeback_states", ids=ids, charge_ids=charge_ids)
    money = {
        (r["livemode"], r["id"]): r
        for r in await sql.fetch(connection, "chargeback_money", charge_ids=charge_ids)
    }
    states = {}
    for row in rows:
        key = (row["livemode"], row["id"])
        held = money.get(key)
        states[key] = ChargebackState(
            ChargebackRow(**dict(row)),
            Held(held["withheld"], held["lost"]) if held else Held(),
            frozenset(held["steps"]) if held else frozenset(),
            held["postings"] if held else 0,
        )
    return states


def _state(row: Record) -> OrderState:
    return OrderState(row["status"], row["last_event_id"], row["last_event_created_at"])


def _candidate_keys(items: Sequence[Incoming]) -> set[str]:
    """The payment and fee keys these events could post; the caller leaves out events of orders
    not in the database yet: nothing of theirs is posted. (Refunds and chargebacks follow their
    own rows and what their postings hold.)"""
    keys: set[str] = set()
    for item in items:
        order_id = item.event.order_id or ""
        for charge in item.event.paid_charges:
            keys.add(ledger.business_key(ledger.PAYMENT, order_id, charge.id))
            keys.add(ledger.business_key(ledger.FEE, order_id, charge.id))
    return keys


async def _write_orders(connection: Connection, plan: Plan) -> None:
    if plan.new_orders:
        rows = list(plan.new_orders.values())
        values = sql.rows_json(sql.values(rows, ORDER_COLUMNS))
        inserted = await sql.fetch(connection, "insert_orders", orders=values)
        if len(inserted) != len(rows):
            raise ConcurrentOrderInsert("a new order was created concurrently")
    if plan.changed_orders:
        rows = list(plan.changed_orders.values())
        values = sql.rows_json(sql.values(rows, ORDER_COLUMNS))  # livemode: a key, never changed
        await sql.execute(connection, "update_orders", orders=values)


async def write_postings(connection: Connection, planned: Sequence[Posting]) -> None:
    """Postings not posted before (per business key and mode), in the first open period, with
    their accounts declared; the apply path's and settlement's one way to post."""
    if not planned:
        return
    postings = await _book_in_open_period(connection, planned)
    await _declare_accounts(connection, postings)
    values = sql.rows_json(sql.values(postings, POSTING_COLUMNS))
    new = await sql.fetch(connection, "insert_ledger_transactions", postings=values)
    by_key = {p.key: p for p in postings}
    entries: list[tuple[int, str, str, int]] = []
    for row in new:
        posting = by_key[(row["livemode"], row["business_key"])]
        entries += [(row["id"], e.account, posting.currency, e.amount) for e in posting.entries]
    if entries:
        await sql.execute(connection, "insert_entries", entries=sql.rows_json(entries))


async def _book_in_open_period(
    connection: Connection, postings: Sequence[Posting]
) -> list[Posting]:
    """The postings as booked: a movement dated in a closed month moves to the first open
    instant (domain.periods.book). The period lock is held until commit, so no close slips in
    between the boundary read here and the insert."""
    await sql.fetch(connection, "share_period_lock", key=PERIOD_LOCK)
    closed_before = await sql.fetchval(connection, "closed_before")  # after the lock: fresh
    return [periods.book(p, closed_before) for p in postings]


async def _declare_accounts(connection: Connection, postings: Sequence[Posting]) -> None:
    """Every account the postings write, declared with its type (an unknown name raises
    UnknownAccount: a permanent error, never a guess)."""
    declared = [
        accounts.declare(name) for name in sorted({e.account for p in postings for e in p.entries})
    ]
    await sql.execute(
        connection,
        "declare_accounts",
        account=[a.name for a in declared],
        type=[a.type.value for a in declared],
        normal_side=[a.normal_side for a in declared],
    )


async def _write_money_rows(connection: Connection, plan: Plan) -> None:
    """Charges booked (or their fee learnt), refunds as Conekta last said, reconcile flags."""
    if plan.charges:
        rows = list(plan.charges.values())
        values = sql.rows_json(sql.values(rows, CHARGE_COLUMNS))
        await sql.execute(connection, "upsert_charges", charges=values)
    if plan.refunds:
        refunds = list(plan.refunds.values())
        await sql.execute(connection, "upsert_refunds", **sql.columns(refunds, REFUND_COLUMNS))
    if plan.flags:
        flags = list({(f.livemode, f.order_id, f.reason): f for f in plan.flags}.values())
        await sql.execute(connection, "flag_for_reconcile", **sql.columns(flags, FLAG_COLUMNS))


async def _write_chargebacks(connection: Connection, plan: Plan) -> None:
    if plan.chargebacks:
        rows = list(plan.chargebacks.values())
        await sql.execute(connection, "upsert_chargebacks", **sql.columns(rows, CHARGEBACK_COLUMNS))


async def _write_outbox(connection: Connection, plan: Plan) -> None:
    if plan.messages:
        await sql.execute(connection, "insert_outbox", **sql.columns(plan.messages, OUTBOX_COLUMNS))
