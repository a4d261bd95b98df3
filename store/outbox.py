"""The outbox: fulfillment messages written with their change, sent by one relay at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import datetime

from core import database
from core.database import Connection, Record
from domain.fulfillment import message_id
from store import sql

OUTBOX_COLUMNS = ("message_id", "routing_key", "body")
OUTBOX_RELAY_LOCK = 0x6F7574626F78  # "outbox": the advisory lock of the one active relay


@dataclass(frozen=True)
class ReplayFilter:
    """Published messages to resend: written in [since, until), of one type, of one order."""

    since: datetime | None = None
    until: datetime | None = None
    event_type: str | None = None
    order_id: str | None = None

    def params(self) -> dict[str, object]:
        values = asdict(self)
        order_id = values.pop("order_id")
        values["order_prefix"] = None if order_id is None else message_id(order_id, "")
        return values


class Outbox(sql.Room):
    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[OutboxClaim]:
        """Unsent messages, oldest first, locked until the block ends. Only one relay (of all
        workers) holds a claim at a time: another gets no rows and tries again later."""
        async with database.transaction(self.pool) as connection:
            locked = await sql.fetchrow(connection, "lock_outbox_relay", key=OUTBOX_RELAY_LOCK)
            held = locked is not None and locked[0]
            rows = await sql.fetch(connection, "claim_outbox", limit=limit) if held else []
            yield OutboxClaim(connection, rows)

    async def messages(self, message_ids: Sequence[str]) -> list[Record]:
        return await self._read("outbox_messages", message_ids=list(message_ids))

    async def backlog(self) -> int:
        rows = await self._read("outbox_backlog")
        return int(rows[0][0])

    async def replay_counts(self, selection: ReplayFilter) -> dict[str, int]:
        """How many published messages a replay selects, per routing key."""
        rows = await self._read("fulfillment_replay_counts", **selection.params())
        return {row["routing_key"]: int(row["count"]) for row in rows}

    async def replay_page(self, selection: ReplayFilter, after_id: int, limit: int) -> list[Record]:
        """The next `limit` of them after `after_id`, oldest first (id, message_id,
        routing_key, body)."""
        return await self._read(
            "fulfillment_replay_page", after_id=after_id, limit=limit, **selection.params()
        )


class OutboxClaim:
    def __init__(self, connection: Connection, rows: list[Record]) -> None:
        self._connection = connection
        self.rows = rows

    async def mark_sent(self, ids: Sequence[int]) -> None:
        await sql.execute(self._connection, "mark_outbox_sent", ids=list(ids))

    async def backlog(self) -> int:
        row = await sql.fetchrow(self._connection, "outbox_backlog")
        return int(row[0]) if row else 0
