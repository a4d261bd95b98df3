"""Cursor pages for every listing of the CLI, the console and the API: a page of `limit` items
and an opaque cursor (the last item's key) for the next."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from core.database import Record
from core.errors import BadRequest

MAX_PAGE = 200


def encode_cursor(*key: object) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


BIGINT = range(-(2**63), 2**63)  # an id column
MAX_CURSOR_TEXT = 1000


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The key a cursor holds, typed; BadRequest when it was not made by encode_cursor. Each
    value is checked as the database will read it: an id is an integer in bigint's range (not
    1e30), a text has no NUL, a time is ISO 8601 that fits in UTC."""
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        return tuple(_cursor_value(v, t) for v, t in zip(values, types, strict=True))
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
        raise BadRequest("cursor: not a cursor from a previous page") from None


def _cursor_value(value: object, kind: type) -> object:
    if kind is int and type(value) is int and value in BIGINT:
        return value
    if isinstance(value, str) and "\x00" not in value and len(value) <= MAX_CURSOR_TEXT:
        if kind is str:
            return value
        if kind is datetime:  # in UTC, or OverflowError (0001-01-01T00:00+05:00)
            parsed = datetime.fromisoformat(value)
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a {kind.__name__}")


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
