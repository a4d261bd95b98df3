"""Retention, as the owner of the tables: month partitions, their export and drop, restore, and
forgetting old event ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from decimal import Decimal

from core import database
from store import sql

_RESTORE = {"events": "restore_events", "outbox": "restore_outbox"}  # exported table -> query


class Retention(sql.Room):
    async def create_partitions(
        self, keys: dict[str, str], first_month: date, last_month: date
    ) -> None:
        """Month partitions of each table (name -> partition key column), where missing."""
        await self._read(
            "create_partitions",
            parents=list(keys),
            keys=list(keys.values()),
            first_month=first_month,
            last_month=last_month,
        )

    async def months(self, table: str) -> list[date]:
        return [row["month"] for row in await self._read("list_months", parent=table)]

    async def month_summary(self, table: str, month: date) -> tuple[int, Decimal]:
        row = await self._read_row("month_summary", parent=table, month=month)
        assert row is not None
        return int(row["rows"]), Decimal(row["checksum"])

    async def month_lines(self, table: str, month: date) -> AsyncIterator[str]:
        """A month's rows as JSON lines, streamed through a cursor."""
        query = sql.QUERIES["month_rows"]
        async with database.transaction(self.pool) as connection:
            args = query.args({"parent": table, "month": month})
            async for row in connection.cursor(query.sql, *args, prefetch=1000):
                yield row["line"]

    async def unsent_in_month(self, month: date) -> int:
        row = await self._read_row("unsent_in_month", month=month)
        return int(row[0]) if row else 0

    async def drop_month(self, table: str, month: date, rows: int, checksum: Decimal) -> None:
        """Drop the month's partition if it still holds exactly `rows` rows with `checksum`."""
        async with database.transaction(self.pool) as connection:
            await sql.execute(
                connection, "drop_month", parent=table, month=month, rows=rows, checksum=checksum
            )

    async def forget_event_ids(self, before: datetime, limit: int) -> int:
        """Forget up to `limit` ids archived before `before` whose rows are pruned (a batch, one
        transaction); how many."""
        async with database.transaction(self.pool) as connection:
            return int(
                await sql.fetchval(connection, "forget_event_ids", before=before, limit=limit)
            )

    async def restore(self, table: str, lines: Sequence[str]) -> None:
        """Exported rows back into their table (and month partition), in one transaction."""
        async with database.transaction(self.pool) as connection:
            await sql.execute(connection, _RESTORE[table], lines=list(lines))
