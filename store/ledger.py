"""The ledger's reads: balances, entries, and the rows that break an invariant; and closing a
month (the only write here: postings are written by the apply path)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime

from core import database
from core.database import Connection, Record
from store import sql
from store.apply import PERIOD_LOCK
from store.audit import AuditedClaim


class Ledger(sql.Room):
    async def balances(self, *, at: datetime | None, livemode: bool | None) -> list[Record]:
        if at is None:
            return await self._read("list_balances", livemode=livemode)
        return await self._read("balances_at", at=at, livemode=livemode)

    async def entries(
        self,
        *,
        account: str | None,
        currency: str | None,
        since: datetime | None,
        until: datetime | None,
        livemode: bool | None,
        after: tuple[datetime, int],
        limit: int,
    ) -> list[Record]:
        """Entries by effective date, then entry id, a page after the cursor `after`."""
        return await self._read(
            "ledger_entries",
            account=account,
            currency=currency,
            since=since,
            until=until,
            livemode=livemode,
            after_effective_at=after[0],
            after_id=after[1],
            limit=limit,
        )

    @asynccontextmanager
    async def closing(self) -> AsyncIterator[PeriodClaim]:
        """The period lock alone (no batch posts meanwhile) and the current boundary, in one
        transaction that the close and its audit entry commit with."""
        async with database.transaction(self.pool) as connection:
            await sql.fetch(connection, "take_period_lock", key=PERIOD_LOCK)
            closed_before = await sql.fetchval(connection, "closed_before")
            yield PeriodClaim(connection, closed_before)

    async def closes(self) -> list[Record]:
        return await self._read("list_closes")

    async def provenance_page(self, after_id: int, limit: int) -> list[Record]:
        """Postings after an id with the archived event that posted each (provenance checks)."""
        return await self._read("provenance_postings", after_id=after_id, limit=limit)

    async def confirming_events(self, order_ids: Sequence[str]) -> list[Record]:
        """Archived events (not `unverified`) of these orders, with bodies and requests."""
        return await self._read("confirming_events", order_ids=list(order_ids))

    async def violations(self, checks: Sequence[str]) -> list[list[Record]]:
        """The rows violating each named check, read in one consistent snapshot."""
        async with (
            self.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            return [await sql.fetch(connection, check) for check in checks]


class PeriodClaim(AuditedClaim):
    def __init__(self, connection: Connection, closed_before: datetime | None) -> None:
        super().__init__(connection, [])
        self.closed_before = closed_before  # the first open instant before this close

    async def close(
        self, month: date, time_zone: str, closed_before: datetime, actor: str
    ) -> Record:
        row = await sql.fetchrow(
            self._connection,
            "close_period",
            month=month,
            time_zone=time_zone,
            closed_before=closed_before,
            actor=actor,
        )
        assert row is not None
        return row
