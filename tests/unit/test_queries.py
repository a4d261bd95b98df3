from __future__ import annotations

import re
from pathlib import Path

from worker import db

WORKER = Path(db.__file__).parent


def test_every_named_query_used_exists() -> None:
    used: set[str] = set()
    for path in WORKER.glob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r'db\.(?:fetch|execute)\(\s*\w+,\s*"(\w+)"', text))
        used |= set(re.findall(r'QUERIES\["(\w+)"\]', text))
        used |= set(re.findall(r'Check\("(\w+)"', text))
    assert used, "no query names found"
    assert used <= set(db.QUERIES), used - set(db.QUERIES)


def test_no_query_is_dead() -> None:
    text = "".join(p.read_text() for p in WORKER.glob("*.py"))
    dead = [name for name in db.QUERIES if f'"{name}"' not in text]
    assert not dead
