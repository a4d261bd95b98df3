"""The audit trail: every operator action (console, API or CLI) with the person's name.

Written in its own transaction right after the action; the table refuses updates and deletes.
"""

from __future__ import annotations

import getpass
from typing import Any

import orjson

from worker.store import Store

PAGE = 100


def cli_actor() -> str:
    """Who runs a CLI command: the operating system's user (the shell on a production box)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


async def record(
    store: Store, actor: str, action: str, target: str, reason: str = "", **details: Any
) -> int:
    return await store.add_audit(actor, action, target, reason, orjson.dumps(details).decode())


async def page(
    store: Store,
    *,
    before_id: int = 0,
    actor: str | None = None,
    action: str | None = None,
    limit: int = PAGE,
) -> list[dict[str, Any]]:
    """Newest first; pass the last id as `before_id` for the next page."""
    rows = await store.audit_page(before_id=before_id, actor=actor, action=action, limit=limit)
    return [
        {
            "id": r["id"],
            "at": r["at"].isoformat(),
            "actor": r["actor"],
            "action": r["action"],
            "target": r["target"],
            "reason": r["reason"],
            "details": orjson.loads(r["details"]),
        }
        for r in rows
    ]
