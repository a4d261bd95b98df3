"""Settlement's actions, shared by the CLI and (later) the console: `settle match`, `settle
verify` (worker/settlement_check.py: the worker runs verify after each pull too) and `bank
import`. Each returns data; the callers render it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from core.database import Record
from domain import bank_statement
from store import Store
from store.settlement import Statement
from worker.settlement_check import (
    MatchResult,
    Records,
    VerifyResult,
    item_view,
    match,
    posting_view,
    records,
    verify,
)

__all__ = [
    "MatchResult",
    "Records",
    "VerifyResult",
    "import_statement",
    "item_view",
    "match",
    "posting_view",
    "records",
    "verify",
]


async def import_statement(
    store: Store, data: bytes, file_name: str, account: str, *, currency: str, actor: str
) -> dict[str, Any]:
    """A bank statement file's bytes, once per file hash, all its lines or none (BadStatement
    lists every bad line)."""
    digest = hashlib.sha256(data).hexdigest()
    if not account or ":" in account:
        raise bank_statement.BadStatement([f"account {account!r}: a name without ':'"])
    known = await store.settlement.statement_by_hash(digest)
    if known is not None:
        return {"imported": False, "statement_id": known["id"], "why": _already(known)}
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bank_statement.BadStatement([f"not UTF-8: {exc}"]) from None
    lines = bank_statement.parse(text, currency.upper())
    statement = Statement(
        account,
        digest,
        file_name,
        min(line.date for line in lines),
        max(line.date for line in lines),
        len(lines),
        actor,
    )
    statement_id = await store.settlement.import_statement(statement, lines)
    if statement_id is None:  # another import of the same bytes won meanwhile
        known = await store.settlement.statement_by_hash(digest)
        assert known is not None
        return {"imported": False, "statement_id": known["id"], "why": _already(known)}
    return {
        "imported": True,
        "statement_id": statement_id,
        "account": f"bank:{account}",
        "lines": len(lines),
        "first_date": statement.first_date.isoformat(),
        "last_date": statement.last_date.isoformat(),
        "sha256": digest,
    }


def _already(known: Record) -> str:
    return (
        f"this file was imported already (statement {known['id']}, {known['file_name']},"
        f" by {known['imported_by']} at {known['imported_at'].isoformat()})"
    )
