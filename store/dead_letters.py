"""Dead letters moved from the broker into the `dead_letters` table, and their settling."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from core import database
from core.database import Record
from domain.archive import ArchiveRow
from store import sql
from store.audit import AuditedClaim
from store.events import archive_columns

DEAD_LETTER_COLUMNS = (
    "message_id",
    "type",
    "order_id",
    "kind",
    "reason",
    "attempts",
    "first_failed_at",
    "last_failed_at",
    "source_queue",
    "exchange",
    "routing_key",
    "headers",
    "body",
)


class DeadLetters(sql.Room):
    async def insert(self, rows: Sequence[object]) -> None:
        async with database.transaction(self.pool) as connection:
            await sql.execute(
                connection, "insert_dead_letters", **sql.columns(rows, DEAD_LETTER_COLUMNS)
            )

    async def find(self, **filters: str | None) -> list[Record]:
        """Open dead letters, oldest first; filters (event_type, kind, order_id) may be None."""
        params = {"event_type": None, "kind": None, "order_id": None, **filters}
        return await self._read("list_dead_letters", **params)

    async def get(self, message_id: str) -> list[Record]:
        return await self._read("get_dead_letters", message_id=message_id)

    async def bodies(self) -> list[Record]:
        return await self._read("dead_letter_bodies")

    async def count(self) -> int:
        rows = await self._read("dead_letter_count")
        return int(rows[0][0])

    async def replayed_rows(self, message_ids: Sequence[str]) -> list[Record]:
        return await self._read("replayed_rows", message_ids=list(message_ids))

    async def replay_outcomes(self, row_ids: Sequence[int]) -> list[Record]:
        return await self._read("replay_outcomes", ids=list(row_ids))

    @asynccontextmanager
    async def claim(
        self,
        ids: Sequence[str],
        everything: bool,
        event_type: str | None = None,
        kind: str | None = None,
        order_id: str | None = None,
    ) -> AsyncIterator[DeadLetterClaim]:
        """Open dead letters by selection (ids, every one, or all matching every filter given),
        locked until the block ends (one transaction)."""
        async with database.transaction(self.pool) as connection:
            rows = await sql.fetch(
                connection,
                "select_dead_letters",
                ids=list(ids),
                everything=everything,
                event_type=event_type,
                kind=kind,
                order_id=order_id,
            )
            yield DeadLetterClaim(connection, rows)


class DeadLetterClaim(AuditedClaim):
    async def settle(self, row_id: int, status: str, actor: str, reason: str | None) -> None:
        await sql.execute(
            self._connection,
            "settle_dead_letter",
            id=row_id,
            status=status,
            actor=actor,
            reason=reason,
        )

    async def tombstone(self, row: ArchiveRow, note: str) -> None:
        """Leave the purged event in the archive (outcome `purged`), so a resend is not applied."""
        values = {name: value[0] for name, value in archive_columns([row]).items()}
        # A purge moves nothing (no provenance to record) and names no customer to search by.
        del values["outcome"], values["provenance"], values["customer_info"]
        await sql.execute(self._connection, "archive_tombstone", **values, note=note)
