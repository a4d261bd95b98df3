from __future__ import annotations

import re
from pathlib import Path

import pytest

from store import sql
from store.sql import compile_query

STORE = Path(sql.__file__).parent
ROOT = STORE.parent


def _sources() -> str:
    return "".join(p.read_text() for p in ROOT.glob("*/*.py") if p.parts[-2] != "tests")


def test_every_named_query_used_exists() -> None:
    text = _sources()
    used = set(
        re.findall(
            r'(?:sql\.(?:fetch|fetchrow|fetchval|execute)|_read|_read_row)\(\s*(?:\w+,\s*)?"(\w+)"',
            text,
        )
    )
    used |= set(re.findall(r'Check\("(\w+)"', text))
    assert used, "no query names found"
    assert used <= set(sql.QUERIES), used - set(sql.QUERIES)


def test_no_query_is_dead() -> None:
    text = _sources()
    dead = [name for name in sql.QUERIES if f'"{name}"' not in text]
    assert not dead


def test_named_parameters_become_positional_once_each() -> None:
    query = compile_query("SELECT :a::text[], 'x:y', :b, :a WHERE c::int = :b")
    assert query.sql == "SELECT $1::text[], 'x:y', $2, $1 WHERE c::int = $2"
    assert query.args({"b": 2, "a": 1}) == [1, 2]
    with pytest.raises(TypeError):
        query.args({"a": 1})


def test_an_apostrophe_in_a_comment_hides_no_parameter() -> None:
    query = compile_query("-- the account's balance\nSELECT :a WHERE b = 'x'")
    assert query.params == ("a",)
    assert query.sql == "SELECT $1 WHERE b = 'x'"


def test_only_the_store_runs_named_queries() -> None:
    for path in ROOT.glob("*/*.py"):
        if path.parts[-2] not in {"store", "tests", "testkit", "bench"}:
            assert "QUERIES" not in path.read_text(), path
