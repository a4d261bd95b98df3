"""The outbox: fulfillment messages written with their change, sent by one relay at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from core import database
from core.database import Connection, Record
from store import sql

OUTBOX_COLUMNS = ("message_id", "routing_key", "body")
OUTBOX_RELAY_LOCK = 0x6F7574626F78  # "outbox": the advisory lock of the one active relay


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


class OutboxClaim:
    def __init__(self, connection: Connection, rows: list[Record]) -> None:
        self._connection = connection
        self.rows = rows

    async def mark_sent(self, ids: Sequence[int]) -> None:
        await sql.execute(self._connection, "mark_outbox_sent", ids=list(ids))

    async def backlog(self) -> int:
        row = await sql.fetchrow(self._connection, "outbox_backlog")
        return int(row[0]) if row else 0
