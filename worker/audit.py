"""The audit trail of operator actions: who did what, when, to how many.

One function records an action; every on-call action that changes what the service does
(dead-letter replay and purge, events replay; later reconcile and console actions) calls it, or
writes through the store in the same transaction as the action itself. The table is append-only
(a trigger refuses updates and deletes).
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

import orjson

from worker.store import Store


def os_actor() -> str:
    """The actor of a CLI command: the operating-system user running it."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers) and no USER variable
        return "os:unknown"


async def record(
    store: Store, actor: str, action: str, count: int, details: dict[str, Any] | None = None
) -> None:
    """Append one operator action to the trail."""
    await store.record_audit(actor, action, count, details or {})


async def entries(store: Store, since: datetime | None = None) -> list[dict[str, Any]]:
    """The trail since a time, oldest first, as plain values."""
    return [
        {
            "id": row["id"],
            "at": row["at"].isoformat(),
            "actor": row["actor"],
            "action": row["action"],
            "count": row["count"],
            "details": _json(row["details"]),
        }
        for row in await store.audit_log(since)
    ]


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value
