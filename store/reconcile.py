"""Reconcile runs: one at a time across processes, each with what it found and backfilled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson

from core.database import Connection, Record
from store import sql

BACKFILL_COLUMNS = ("event_id", "type", "livemode", "created_at")
# One reconcile at a time, across processes (a session-level advisory lock).
RECONCILE_LOCK = 0x7265636F6E63  # "reconc"


class Reconcile(sql.Room):
    @asynccontextmanager
    async def lock(self, *, wait: bool) -> AsyncIterator[ReconcileSession | None]:
        """The reconcile lock on a connection of its own, held until the block ends; None when
        another run holds it and `wait` is false (else poll until it is free)."""
        async with self.pool.acquire() as connection:
            while not await sql.fetchval(connection, "reconcile_try_lock", key=RECONCILE_LOCK):
                if not wait:
                    yield None
                    return
                await asyncio.sleep(1.0)
            try:
                yield ReconcileSession(connection)
            finally:
                await sql.fetchval(connection, "reconcile_unlock", key=RECONCILE_LOCK)

    async def last_run(self) -> Record | None:
        """The newest successful (not dry) reconcile run."""
        return await self._read_row("reconcile_last_run")


class ReconcileSession:
    """What a reconcile run writes, on the connection that holds the reconcile lock."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def last_success(self) -> Record | None:
        return await sql.fetchrow(self._connection, "reconcile_last_success")

    async def start(self, since: datetime, until: datetime, *, dry_run: bool) -> int:
        run_id: int = await sql.fetchval(
            self._connection, "reconcile_start", since=since, until=until, dry_run=dry_run
        )
        return run_id

    async def finish(
        self,
        run_id: int,
        status: str,
        *,
        livemode: bool | None,
        counts: dict[str, Any],
        error: str | None = None,
    ) -> None:
        await sql.execute(
            self._connection,
            "reconcile_finish",
            run_id=run_id,
            status=status,
            livemode=livemode,
            counts=orjson.dumps(counts).decode(),
            error=error,
        )

    async def known(self, ids: Sequence[str]) -> dict[str, str]:
        """For each id the archive or an earlier backfill knows: 'archived' or 'backfilled'."""
        rows = await sql.fetch(self._connection, "reconcile_known_events", ids=list(ids))
        return {r["event_id"]: "archived" if r["archived"] else "backfilled" for r in rows}

    async def record_backfills(self, run_id: int, rows: Sequence[object]) -> None:
        if rows:
            await sql.execute(
                self._connection,
                "reconcile_record_backfills",
                run_id=run_id,
                **sql.columns(rows, BACKFILL_COLUMNS),
            )
