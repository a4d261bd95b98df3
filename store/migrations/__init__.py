"""Numbered SQL migrations, each applied once, recorded in `schema_migrations`; then the runtime
role's grants (grants.sql), re-applied on every run so they always match the file.

`migrate` connects as the role that owns the tables; the services as a member of conekta_runtime.
An advisory lock makes `migrate` safe to run from several processes at once.
"""

from __future__ import annotations

from importlib import resources

from core import database

_LOCK_KEY = 0x636F6E656B7461  # "conekta"
GRANTS = "grants.sql"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def available() -> list[tuple[str, str]]:
    """(name, sql) of every numbered migration file (NNNN_name.sql), in order."""
    folder = resources.files(__name__)
    files = sorted(
        f.name for f in folder.iterdir() if f.name.endswith(".sql") and f.name[:4].isdigit()
    )
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text()) for name in files]


async def migrate(url: str) -> list[str]:
    """Create the database if missing and apply pending migrations; returns those applied."""
    await database.ensure_database(url)
    connection = await database.connect(url)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        await connection.execute(_CREATE_TABLE)
        done = {r["name"] for r in await connection.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in available():
            if name in done:
                continue
            async with connection.transaction():
                await connection.execute(sql)
                await connection.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied.append(name)
        async with connection.transaction():
            await connection.execute(grants())
        return applied
    finally:
        await connection.close()  # closing the session releases the advisory lock


def grants() -> str:
    """The runtime role's privileges, as SQL (store/migrations/grants.sql)."""
    return resources.files(__name__).joinpath(GRANTS).read_text()


async def pending(pool: database.Pool) -> list[str]:
    """Migrations not yet applied to the database behind `pool`."""
    async with pool.acquire() as connection:
        exists = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        done = (
            {r["name"] for r in await connection.fetch("SELECT name FROM schema_migrations")}
            if exists
            else set()
        )
    return [name for name, _ in available() if name not in done]
