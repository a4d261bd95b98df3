"""Apply a batch of order events in one transaction: lock, plan, write. Ack only after this returns.

Lock order, the same in every transaction, so concurrent workers cannot deadlock: existing
orders by id, then new orders by id (insert), then balances by (account, currency).
"""

from __future__ import annotations

from collections.abc import Sequence

from worker import db
from worker.ledger import Posting
from worker.order_state import OrderState
from worker.plan import ArchiveRow, Incoming, Plan, plan_batch


class ConcurrentOrderInsert(db.TransientDatabaseError):
    """Another worker created one of our new orders first: retry and see its state."""


async def apply_batch(
    pool: db.Pool, items: Sequence[Incoming], *, replay: bool = False
) -> list[str]:
    """Outcomes per item, in order, once committed.

    `replay` re-applies events already in the archive (after a fix, or to rebuild projections):
    the id check is skipped; order rules and business keys still make it idempotent.
    """
    async with db.transaction(pool) as connection:
        return await _apply(connection, items, replay)


async def _apply(connection: db.Connection, items: Sequence[Incoming], replay: bool) -> list[str]:
    order_ids = sorted({item.event.order_id for item in items})
    current = {
        row["id"]: OrderState(row["status"], row["last_event_id"], row["last_event_created_at"])
        for row in await db.fetch(connection, "lock_orders", order_ids)
    }
    event_ids = [item.event.event_id for item in items]
    archived = (
        []
        if replay
        else [
            row["event_id"] for row in await db.fetch(connection, "archived_event_ids", event_ids)
        ]
    )
    plan = plan_batch(items, current, archived)
    await _write_orders(connection, plan)
    await _write_postings(connection, list(plan.postings.values()))
    await write_archive(connection, plan.archive)
    await _write_outbox(connection, plan)
    return plan.outcomes


def _columns(rows: Sequence[object], *names: str) -> list[list[object]]:
    return [[getattr(row, name) for row in rows] for name in names]


async def _write_orders(connection: db.Connection, plan: Plan) -> None:
    if plan.new_orders:
        rows = list(plan.new_orders.values())
        inserted = await db.fetch(
            connection,
            "insert_orders",
            *_columns(
                rows,
                "id",
                "status",
                "amount",
                "currency",
                "customer_key",
                "livemode",
                "last_event_id",
                "last_event_created_at",
            ),
        )
        if len(inserted) != len(rows):
            raise ConcurrentOrderInsert("a new order was created concurrently")
    if plan.changed_orders:
        rows = list(plan.changed_orders.values())
        await db.execute(
            connection,
            "update_orders",
            *_columns(
                rows,
                "id",
                "status",
                "amount",
                "currency",
                "customer_key",
                "last_event_id",
                "last_event_created_at",
            ),
        )


async def _write_postings(connection: db.Connection, postings: Sequence[Posting]) -> None:
    if not postings:
        return
    new = await db.fetch(
        connection,
        "insert_ledger_transactions",
        [p.business_key for p in postings],
        [p.kind for p in postings],
        [p.order_id for p in postings],
        [p.charge_id for p in postings],
        [p.currency for p in postings],
        [p.event_id for p in postings],
    )
    by_key = {p.business_key: p for p in postings}
    transaction_ids: list[int] = []
    accounts: list[str] = []
    currencies: list[str] = []
    amounts: list[int] = []
    for row in new:
        posting = by_key[row["business_key"]]
        for entry in posting.entries:
            transaction_ids.append(row["id"])
            accounts.append(entry.account)
            currencies.append(posting.currency)
            amounts.append(entry.amount)
    if transaction_ids:
        await db.execute(
            connection, "insert_entries", transaction_ids, accounts, currencies, amounts
        )


async def write_archive(connection: db.Connection, rows: Sequence[ArchiveRow]) -> None:
    """Store raw events with their outcome (an id already archived is left as it is)."""
    if rows:
        await db.execute(
            connection,
            "archive_events",
            *_columns(
                rows,
                "event_id",
                "type",
                "order_id",
                "livemode",
                "created_at",
                "received_at",
                "outcome",
                "body",
            ),
        )


async def _write_outbox(connection: db.Connection, plan: Plan) -> None:
    if not plan.messages:
        return
    await db.execute(
        connection,
        "insert_outbox",
        [m.message_id for m in plan.messages],
        [m.routing_key for m in plan.messages],
        [m.body for m in plan.messages],
    )
