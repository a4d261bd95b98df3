"""The audit trail: who did what to which events, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from core import database
from core.database import Connection, Record
from store import sql


class Audit(sql.Room):
    async def record(self, actor: str, action: str, count: int, details: dict[str, Any]) -> Record:
        async with database.transaction(self.pool) as connection:
            return await record(connection, actor, action, count, details)

    async def log(self, since: datetime | None) -> list[Record]:
        return await self._read("list_audit", since=since)

    async def page(self, **filters: Any) -> list[Record]:
        return await self._read("page_audit", **filters)


async def record(
    connection: Connection, actor: str, action: str, count: int, details: dict[str, Any]
) -> Record:
    row = await sql.fetchrow(
        connection,
        "record_audit",
        actor=actor,
        action=action,
        count=count,
        details=orjson.dumps(details, default=str).decode(),
    )
    assert row is not None
    return row


class AuditedClaim:
    """Rows locked in one transaction; the action's audit entry commits with its changes."""

    def __init__(self, connection: Connection, rows: list[Record]) -> None:
        self._connection = connection
        self.rows = rows

    async def audit(self, actor: str, action: str, count: int, details: dict[str, Any]) -> int:
        """Record the action in the same transaction as its changes; the entry's id."""
        row = await record(self._connection, actor, action, count, details)
        return int(row["id"])
