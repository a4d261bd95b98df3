"""Cursor pages for every listing of the CLI, the console and the API: a page of `limit` items
and an opaque cursor (the last item's key) for the next."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from core.database import Record
from core.errors import BadRequest

MAX_PAGE = 200


def encode_cursor(*key: object) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The key a cursor holds, typed; BadRequest when it was not made by encode_cursor."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        return tuple(
            datetime.fromisoformat(v) if t is datetime else t(v)
            for v, t in zip(values, types, strict=True)
        )
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadRequest("not a cursor from a previous page") from None


def page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
    return limit


def jsonable(row: Record | Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in dict(row).items()}


def page_of(
    rows: Sequence[Any],
    limit: int,
    key: Callable[[Any], tuple[object, ...]],
    item: Callable[[Any], dict[str, Any]] = jsonable,
) -> dict[str, Any]:
    """A page of `limit` items from rows fetched with one extra (the sign of a next page); the
    next cursor is the key of its last item."""
    shown = rows[:limit]  # limit >= 1 (page_size)
    return {
        "items": [item(row) for row in shown],
        "next": encode_cursor(*key(shown[-1])) if len(rows) > limit else None,
    }
