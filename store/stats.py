"""Counts for `stats` and the console's overview: events per day, type and outcome."""

from __future__ import annotations

from datetime import datetime

from core.database import Record
from store import sql


class Stats(sql.Room):
    async def archived_by_day(self, since: datetime, until: datetime) -> list[Record]:
        return await self._read("stats_archived", since=since, until=until)

    async def window_counts(
        self, since: datetime, until: datetime, livemode: bool | None
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Per type, in a window: archived events, and backfilled events not archived yet."""
        archived = await self._read(
            "stats_window_archived", since=since, until=until, livemode=livemode
        )
        pending = await self._read("stats_window_backfilled_unarchived", since=since, until=until)
        return (
            {r["type"]: r["events"] for r in archived},
            {r["type"]: r["events"] for r in pending},
        )

    async def outcome_counts(self, since: datetime) -> list[Record]:
        return await self._read("outcome_counts", since=since)

    async def outcome_descriptions(self) -> list[Record]:
        return await self._read("outcome_descriptions")
