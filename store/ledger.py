"""The ledger's reads: balances, entries, and the rows that break an invariant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

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
        since: datetime | None,
        until: datetime | None,
        livemode: bool | None,
    ) -> list[Record]:
        return await self._read(
            "list_entries", account=account, since=since, until=until, livemode=livemode
        )

    async def entries_page(self, **filters: Any) -> list[Record]:
        return await self._read("ledger_entries_page", **filters)

    async def violations(self, checks: Sequence[str]) -> list[list[Record]]:
        """The rows violating each named check, read in one consistent snapshot."""
        async with (
            self.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            return [await sql.fetch(connection, check) for check in checks]
