"""Events in flight after a failure (the `event_failures` table): sent to a retry tier, or to the
dead letters and not stored there yet. What `events show`, `events list --state retrying` and the
console read so that no event the worker has seen is ever out of sight."""

from __future__ import annotations

from datetime import datetime

from core.database import Record
from store import sql


class InFlight(sql.Room):
    async def record(
        self,
        *,
        event_id: str,
        type: str | None,
        attempt: int,
        error_kind: str,
        error: str,
        sent_to: str,
        queue: str,
        next_attempt_at: datetime | None,
        first_failed_at: datetime,
    ) -> None:
        """An event sent to a retry tier (`sent_to` retry) or the dead letters, before the
        publish: if the publish fails, the row says so until the redelivery decides again."""
        async with self.pool.acquire() as connection:
            await sql.execute(
                connection,
                "record_event_failure",
                event_id=event_id,
                type=type,
                attempt=attempt,
                error_kind=error_kind,
                error=error,
                sent_to=sent_to,
                queue=queue,
                next_attempt_at=next_attempt_at,
                first_failed_at=first_failed_at,
            )

    async def get(self, event_id: str) -> Record | None:
        return await self._read_row("get_event_failure", event_id=event_id)

    async def listing(self, error_kind: str | None = None, limit: int = 1000) -> list[Record]:
        """By reason, then oldest first."""
        return await self._read("list_event_failures", error_kind=error_kind, limit=limit)

    async def counts(self) -> list[Record]:
        """Per reason and destination: how many, and since when."""
        return await self._read("count_event_failures")
