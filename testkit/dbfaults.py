"""Database faults on demand: triggers that make writes fail with a chosen SQLSTATE, as a full
disk (53100) or a read-only replica after a failover (25006) would, until removed. For the test's
own database only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

# The tables each writer touches: the order consumer (orders, events, outbox insert), the archive
# consumer (events), the outbox relay (outbox update), the dead-letter mover (dead_letters).
TABLES = ("orders", "events", "outbox", "dead_letters")

_CREATE = """
CREATE TABLE IF NOT EXISTS injected_fault (
    sqlstate text NOT NULL, tables text[] NOT NULL, ops text[] NOT NULL
);
CREATE OR REPLACE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    code text;
BEGIN
    -- a monthly partition (events, outbox) answers for its parent table
    SELECT sqlstate INTO code FROM injected_fault
    WHERE coalesce((SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = TG_RELID),
                   TG_TABLE_NAME) = ANY(tables)
      AND TG_OP = ANY(ops) LIMIT 1;
    IF code IS NOT NULL THEN
        RAISE EXCEPTION 'injected fault %', code USING ERRCODE = code;
    END IF;
    RETURN NEW;
END $$;
"""


async def inject(
    db: asyncpg.Connection[Any],
    sqlstate: str,
    tables: Sequence[str] = TABLES,
    ops: Sequence[str] = ("INSERT", "UPDATE"),
) -> None:
    """From now on writes (`ops`) to `tables` fail with `sqlstate`."""
    await db.execute(_CREATE)
    for table in TABLES:
        await db.execute(f"DROP TRIGGER IF EXISTS injected_fault ON {table}")
        await db.execute(
            f"CREATE TRIGGER injected_fault BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION injected_fault()"
        )
    await db.execute("DELETE FROM injected_fault")
    await db.execute(
        "INSERT INTO injected_fault VALUES ($1, $2, $3)", sqlstate, list(tables), list(ops)
    )


async def remove(db: asyncpg.Connection[Any]) -> None:
    """Writes succeed again (the triggers stay, doing nothing)."""
    await db.execute("DELETE FROM injected_fault")


@contextlib.asynccontextmanager
async def failing_writes(
    db: asyncpg.Connection[Any], sqlstate: str, tables: Sequence[str] = TABLES
) -> AsyncIterator[None]:
    await inject(db, sqlstate, tables)
    try:
        yield
    finally:
        await remove(db)
