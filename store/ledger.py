"""The ledger's reads: balances, entries, and the rows that break an invariant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.database import Record
from store import sql


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

    async def violations(self, checks: Sequence[str]) -> list[list[Record]]:
        """The rows violating each named check, read in one consistent snapshot."""
        async with (
            self.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            return [await sql.fetch(connection, check) for check in checks]
