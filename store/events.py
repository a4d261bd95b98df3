"""The archive: every raw event the worker received, with its outcome (the `events` table), and
the on-call reads of it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from core import database
from core.database import Connection, Record
from domain.archive import ArchiveRow
from store import sql

ARCHIVE_COLUMNS = (
    "event_id",
    "type",
    "order_id",
    "livemode",
    "created_at",
    "received_at",
    "outcome",
    "body",
    "original_id",
    "reason",
    "request",
    "provenance",
    "customer_info",
)


class Events(sql.Room):
    async def archive(self, rows: Sequence[ArchiveRow]) -> None:
        """Store raw events with their outcome (an id already archived is left as it is)."""
        async with database.transaction(self.pool) as connection:
            await write_archive(connection, rows)

    async def get(self, event_id: str) -> Record | None:
        return await self._read_row("get_event", event_id=event_id)

    async def page(
        self,
        *,
        handled_types: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        event_type: str | None,
        order_id: str | None,
        after: tuple[datetime, str],
        limit: int,
        include_purged: bool = False,
    ) -> list[Record]:
        """Archived events of handled types in Conekta's order, a page after the cursor."""
        return await self._read(
            "replay_events",
            handled_types=list(handled_types),
            since=since,
            until=until,
            event_type=event_type,
            order_id=order_id,
            after_created_at=after[0],
            after_event_id=after[1],
            limit=limit,
            include_purged=include_purged,
        )

    async def of_outcome(
        self, outcome: str, *, since: datetime | None, after: tuple[datetime, str], limit: int
    ) -> list[Record]:
        """Archived events of one outcome, without bodies, a page after the cursor."""
        return await self._read(
            "list_events",
            outcome=outcome,
            since=since,
            after_created_at=after[0],
            after_event_id=after[1],
            limit=limit,
        )

    async def search(self, **filters: Any) -> list[Record]:
        """Filters: event_id, order_id, customer, event_type, outcome, since, until, the cursor
        after_created_at/after_event_id, limit (see explore.sql: search_events)."""
        return await self._read("search_events", **filters)


async def write_archive(connection: Connection, rows: Sequence[ArchiveRow]) -> None:
    # One row per id: an upsert may not touch the same row twice in one statement.
    unique: dict[str, ArchiveRow] = {}
    for row in rows:
        unique.setdefault(row.event_id, row)
    if unique:
        await sql.execute(connection, "archive_events", **archive_columns(list(unique.values())))


def _jsonb_text(value: object) -> str | None:
    """JSON text a jsonb parameter takes; None for no value, or one jsonb refuses (a NUL: a
    request never holds one, core.request cleans it out)."""
    if value is None:
        return None
    text = orjson.dumps(value).decode()
    return None if "\\u0000" in text else text


def archive_columns(rows: Sequence[ArchiveRow]) -> dict[str, list[Any]]:
    """The archive rows column by column; the request and customer_info as JSON text (jsonb
    parameters)."""
    values = sql.columns(rows, ARCHIVE_COLUMNS)
    for column in ("request", "customer_info"):
        values[column] = [_jsonb_text(value) for value in values[column]]
    return values
