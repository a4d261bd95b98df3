"""`invalid` events of the archive: selected, counted and claimed for a replay or a purge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from core import database
from core.database import Record
from store import sql
from store.audit import AuditedClaim


class Invalid(sql.Room):
    async def page(
        self, *, after: tuple[datetime, str], limit: int, bodies: bool, **selection: Any
    ) -> list[Record]:
        """`invalid` events of a selection (ids, event_type, since, until), a page after the
        cursor; with their bodies when asked."""
        return await self._read(
            "invalid_events",
            after_created_at=after[0],
            after_event_id=after[1],
            limit=limit,
            bodies=bodies,
            **selection,
        )

    async def count(self, **selection: Any) -> int:
        rows = await self._read("count_invalid_events", **selection)
        return int(rows[0][0])

    @asynccontextmanager
    async def claim(self, **selection: Any) -> AsyncIterator[InvalidClaim]:
        """The `invalid` events of a selection (no bodies), locked until the block ends (one
        transaction)."""
        async with database.transaction(self.pool) as connection:
            rows = await sql.fetch(connection, "lock_invalid_events", **selection)
            yield InvalidClaim(connection, rows)


class InvalidClaim(AuditedClaim):
    async def purge(self, ids: Sequence[str], note: str) -> None:
        """These `invalid` events become purge tombstones (bodies kept), `note` saying why."""
        await sql.execute(self._connection, "purge_invalid_events", ids=list(ids), note=note)
