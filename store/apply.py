"""The write path: a batch of order events planned by the domain and written in one transaction
(orders, ledger postings, chargebacks, archive, outbox).

Lock order, the same in every transaction, so concurrent workers cannot deadlock: existing
orders by (id, mode), then new orders by (id, mode) (insert), then the period lock (shared: a
`ledger close` takes it alone), then new accounts by name, then balances by (account, currency,
mode).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from core import database
from core.database import Connection, Record
from core.errors import TransientDatabaseError
from domain import accounts, ledger, periods
from domain.archive import ArchiveRow
from domain.fulfillment import OrderView
from domain.ledger import Posting
from domain.order_event import OrderEvent
from domain.order_state import OrderState
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Booked, Incoming, Plan, plan_batch
from store import sql
from store.events import write_archive

ORDER_INSERT_COLUMNS = (
    "id",
    "status",
    "amount",
    "currency",
    "customer_key",
    "livemode",
    "last_event_id",
    "last_event_created_at",
)
ORDER_UPDATE_COLUMNS = ORDER_INSERT_COLUMNS  # livemode: part of the key, never changed
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
)
OUTBOX_COLUMNS = ("message_id", "routing_key", "body")
# Shared by every batch that posts, taken alone by `ledger close`: a close waits for the batches
# in flight, and the next ones book by the new boundary (store/queries/periods.sql).
PERIOD_LOCK = 0x706572696F64  # "period"


class ConcurrentOrderInsert(TransientDatabaseError):
    """Another worker created one of our new orders first: retry and see its state."""


@dataclass(frozen=True)
class Applied:
    """What a committed batch did: an outcome per item, in order, and the events the domain
    found contradicting a payment (an unpaid order's ending), for the caller to report."""

    outcomes: list[Outcome]
    contradictions: list[OrderEvent]


class Apply(sql.Room):
    async def batch(
        self,
        items: Sequence[Incoming],
        *,
        replay: bool = False,
        modes: Collection[bool] = ALL_MODES,
    ) -> Applied:
        """Plan and write a batch; its outcomes once committed.

        `replay` re-applies events already in the archive (after a fix, or to rebuild
        projections): the id check is skipped; order rules and business keys keep it idempotent.
        `modes`: the livemodes accepted (CONEKTA_ACCEPT_MODES); others are archived `other_mode`.
        """
        async with database.transaction(self.pool) as connection:
            plan = await _apply_batch(connection, items, replay=replay, modes=modes)
        return Applied(plan.outcomes, plan.contradictions)

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
            plan = await _apply_batch(connection, items, replay=True, modes=modes)
            await write_archive(connection, rows)
        return Applied(plan.outcomes, plan.contradictions)


async def _apply_batch(
    connection: Connection,
    items: Sequence[Incoming],
    *,
    replay: bool,
    modes: Collection[bool],
) -> Plan:
    """Plan and write a batch (in the caller's transaction)."""
    booked = await _load(connection, items, replay=replay)
    plan = plan_batch(items, booked, modes)
    await _write_orders(connection, plan)
    await _write_postings(connection, list(plan.postings.values()))
    await _write_chargebacks(connection, plan)
    await write_archive(connection, plan.archive)
    await _write_outbox(connection, plan)
    return plan


async def _load(connection: Connection, items: Sequence[Incoming], *, replay: bool) -> Booked:
    """Lock the batch's orders and read what the plan needs; charges are resolved first, so the
    orders of chargebacks (which name only a charge) are locked too."""
    events = [item.event for item in items]
    # Charges named by charge events, and refunded ones (a refund goes back to the customer the
    # payment was booked for); plain payments need no lookup.
    charge_ids = sorted(
        {e.charge_id for e in events if e.charge_id}
        | {c.id for e in events for c in e.paid_charges if c.refunds}
    )
    charges = {}
    for row in await sql.fetch(connection, "booked_charges", charge_ids=charge_ids):
        charges[(row["livemode"], row["charge_id"])] = ledger.Charge(
            row["charge_id"],
            row["order_id"],
            row["amount"],
            row["currency"],
            row["livemode"],
            row["customer_key"],
            row["refunded"],
        )
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
        [i for i in items if (i.event.livemode, i.event.order_id) in known or i.event.chargeback]
    )
    keys = await sql.fetch(connection, "booked_keys", keys=sorted(candidates))
    chargeback_keys = sorted({(e.chargeback.id, e.livemode) for e in events if e.chargeback})
    chargebacks = await sql.fetch(
        connection,
        "chargeback_states",
        ids=[k[0] for k in chargeback_keys],
        livemodes=[k[1] for k in chargeback_keys],
    )
    return Booked(
        orders={_key(r): _state(r) for r in orders},
        archived_ids=archived,
        keys={(r["livemode"], r["business_key"]) for r in keys},
        charges=charges,
        chargebacks={_key(r): _state(r) for r in chargebacks},
        order_views={
            _key(r): OrderView(
                r["id"], r["status"], r["amount"], r["currency"], r["customer_key"], r["livemode"]
            )
            for r in orders
        },
    )


def _key(row: Record) -> tuple[bool, str]:
    """An order's or a chargeback's key in the plan: (livemode, id)."""
    return (row["livemode"], row["id"])


def _state(row: Record) -> OrderState:
    return OrderState(row["status"], row["last_event_id"], row["last_event_created_at"])


def _candidate_keys(items: Sequence[Incoming]) -> set[str]:
    """Every business key these events could post (payments, refunds, chargeback steps); the
    caller leaves out events of orders not in the database yet: nothing of theirs is posted."""
    keys: set[str] = set()
    for item in items:
        keys |= ledger.candidate_keys(item.event)
    return keys


async def _write_orders(connection: Connection, plan: Plan) -> None:
    if plan.new_orders:
        rows = list(plan.new_orders.values())
        inserted = await sql.fetch(
            connection, "insert_orders", **sql.columns(rows, ORDER_INSERT_COLUMNS)
        )
        if len(inserted) != len(rows):
            raise ConcurrentOrderInsert("a new order was created concurrently")
    if plan.changed_orders:
        rows = list(plan.changed_orders.values())
        await sql.execute(connection, "update_orders", **sql.columns(rows, ORDER_UPDATE_COLUMNS))


async def _write_postings(connection: Connection, planned: Sequence[Posting]) -> None:
    if not planned:
        return
    postings = await _book_in_open_period(connection, planned)
    await _declare_accounts(connection, postings)
    new = await sql.fetch(
        connection, "insert_ledger_transactions", **sql.columns(postings, POSTING_COLUMNS)
    )
    by_key = {p.key: p for p in postings}
    entries: dict[str, list[Any]] = {
        "transaction_id": [],
        "account": [],
        "currency": [],
        "amount": [],
    }
    for row in new:
        posting = by_key[(row["livemode"], row["business_key"])]
        for entry in posting.entries:
            entries["transaction_id"].append(row["id"])
            entries["account"].append(entry.account)
            entries["currency"].append(posting.currency)
            entries["amount"].append(entry.amount)
    if entries["transaction_id"]:
        await sql.execute(connection, "insert_entries", **entries)


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


async def _write_chargebacks(connection: Connection, plan: Plan) -> None:
    if plan.chargebacks:
        rows = list(plan.chargebacks.values())
        await sql.execute(connection, "upsert_chargebacks", **sql.columns(rows, CHARGEBACK_COLUMNS))


async def _write_outbox(connection: Connection, plan: Plan) -> None:
    if plan.messages:
        await sql.execute(connection, "insert_outbox", **sql.columns(plan.messages, OUTBOX_COLUMNS))
