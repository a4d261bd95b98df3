"""The audit trail of operator actions: who did what, when, to how many.

One function records an action; every on-call action that changes what the service does
(dead-letter replay and purge, events replay, invalid events, reconcile, orders record,
archive prune and restore, console users) calls it, or writes
through the store in the same transaction as the action itself. The table is append-only
(a trigger refuses updates and deletes). Actors: `os:<user>` for the CLI, `console:<name>` for
the console and the admin API. What an action touched (`target`) and why (`reason`) are kept in
`details` when the action has them.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from store import Store

PAGE = 100  # entries per console page


def os_actor() -> str:
    """The actor of a CLI command: the operating-system user running it."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers) and no USER variable
        return "os:unknown"


def console_actor(name: str) -> str:
    """The actor of a console page or admin API call: the signed-in person."""
    return f"console:{name}"


def target(what: str, ids: Sequence[str], everything: bool, filters: Mapping[str, Any]) -> str:
    """An action's `target` in the audit trail, in a line: every one, the keys (the first 20),
    or the filters given."""
    if everything:
        return f"all {what}"
    if ids:
        return " ".join(ids[:20]) + (" ..." if len(ids) > 20 else "")
    shown = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items()}
    return " ".join(f"{k}={v}" for k, v in shown.items() if v)


async def record(
    store: Store, actor: str, action: str, count: int, details: dict[str, Any] | None = None
) -> int:
    """Append one operator action to the trail; its id."""
    row = await store.audit.record(actor, action, count, details or {})
    return int(row["id"])


async def entries(store: Store, since: datetime | None = None) -> list[dict[str, Any]]:
    """The trail since a time, oldest first, as plain values."""
    return [_plain(row) for row in await store.audit.log(since)]


async def page(
    store: Store,
    *,
    before_id: int = 0,
    actor: str | None = None,
    action: str | None = None,
    limit: int = PAGE,
) -> list[dict[str, Any]]:
    """Newest first; pass the last id as `before_id` for the next page."""
    rows = await store.audit.page(before_id=before_id, actor=actor, action=action, limit=limit)
    return [_plain(row) for row in rows]


def _plain(row: Any) -> dict[str, Any]:
    details = _json(row["details"])
    return {
        "id": row["id"],
        "at": row["at"].isoformat(),
        "actor": row["actor"],
        "action": row["action"],
        "count": row["count"],
        "target": str(details.get("target", "")) if isinstance(details, dict) else "",
        "reason": str(details.get("reason", "")) if isinstance(details, dict) else "",
        "details": details,
    }


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value
