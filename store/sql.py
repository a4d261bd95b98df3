"""Named SQL: every query of store/queries/*.sql loaded once, run by name with named parameters
(`:ids`), and the base of the store's rooms.

Driver errors come out as the project's own (core.errors) through core.database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from core.database import Connection, Pool, Record


@dataclass(frozen=True)
class Query:
    sql: str  # with asyncpg's $n
    params: tuple[str, ...]  # the name of $1, $2, ...

    def args(self, values: dict[str, Any]) -> list[Any]:
        missing = set(self.params) - set(values)
        if missing or set(values) - set(self.params):
            raise TypeError(f"query parameters {self.params}, given {tuple(values)}")
        return [values[name] for name in self.params]


_HEADER = re.compile(r"^-- (\w+): .+$", re.MULTILINE)
# A :name not preceded by ':' (a ::cast) and outside quoted literals.
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def compile_query(text: str) -> Query:
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    # Whole-line comments go first: an apostrophe in one ("the account's") would flip the
    # quote tracking below and hide every parameter after it.
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    pieces = text.split("'")
    pieces[::2] = [_PARAM.sub(number, piece) for piece in pieces[::2]]  # even: outside quotes
    return Query("'".join(pieces), tuple(names))


def load_queries() -> dict[str, Query]:
    """Every named query of store/queries/*.sql (one file per concept); names are unique."""
    queries: dict[str, Query] = {}
    folder = resources.files("store").joinpath("queries")
    for file in sorted(folder.iterdir(), key=lambda f: f.name):
        if not file.name.endswith(".sql"):
            continue
        parts = _HEADER.split(file.read_text())  # [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise ValueError(f"query {name} defined twice ({file.name})")
            queries[name] = compile_query(body.strip())
    return queries


QUERIES = load_queries()


def columns(rows: Sequence[object], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows of dataclasses as one list per column, for the unnest(...) inserts."""
    return {name: [getattr(row, name) for row in rows] for name in names}


def values(rows: Sequence[object], names: Sequence[str]) -> list[list[Any]]:
    """Rows of dataclasses as lists of these fields, for `rows_json`."""
    return [[getattr(row, name) for name in names] for row in rows]


def rows_json(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as one JSON array of arrays, for the jsonb_array_elements(...) inserts of the
    widest batches (the ledger's): the driver sends one text where typed arrays cost it a
    Python-level type check per element (~1 us each; 13 % of the worker's CPU went to encoding
    its arguments). Naive datetimes are read as UTC, as the driver reads them for timestamptz."""
    return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()


async def fetch(connection: Connection, name: str, **params: Any) -> list[Record]:
    query = QUERIES[name]
    return await connection.fetch(query.sql, *query.args(params))


async def fetchrow(connection: Connection, name: str, **params: Any) -> Record | None:
    query = QUERIES[name]
    return await connection.fetchrow(query.sql, *query.args(params))


async def fetchval(connection: Connection, name: str, **params: Any) -> Any:
    query = QUERIES[name]
    return await connection.fetchval(query.sql, *query.args(params))


async def execute(connection: Connection, name: str, **params: Any) -> None:
    query = QUERIES[name]
    await connection.execute(query.sql, *query.args(params))


class Room:
    """One concept's queries over the store's pool. Methods that write open their own
    transaction."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def _read(self, name: str, **params: Any) -> list[Record]:
        async with self.pool.acquire() as connection:
            return await fetch(connection, name, **params)

    async def _read_row(self, name: str, **params: Any) -> Record | None:
        async with self.pool.acquire() as connection:
            return await fetchrow(connection, name, **params)
