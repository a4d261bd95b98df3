"""What a usable event is: JSON that passes `schemas/event.json` and holds no NUL in its text.

Judged by the worker before anything is applied (an event that fails is archived `invalid`), and
by the receiver only in `--allow-unsigned` mode (there is no signature to trust, so it answers
400). The reason names the field as a path from the event's root:
`data.object.payment_status: required`.

Every body, usable or not, has a bounded key (`event_key`): the archive's primary key and the
AMQP message id (a shortstr: 255 bytes at most). Conekta's own ids are their own key; an id of
another shape or length becomes `sha256:<hex of the id>`; a body without a string id
`body:<hex of the body's sha256>`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import orjson

import schemas
from core.errors import InvalidEvent

PING_TYPE = "webhook_ping"
MAX_REASON = 300  # a message can quote the offending value: keep the reason short

UNKNOWN_TYPE = "unknown"  # the archived type of a body without a well-formed one
MAX_TYPE_LENGTH = 100  # as schemas/event.json
_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+)*")
_PLAIN_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")  # no ':', so never one of the prefixes above

_VALIDATOR = jsonschema_rs.validator_for(schemas.load("event.json"))


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    livemode: bool
    created_at: int


def judge(body: bytes) -> dict[str, Any]:
    """The parsed event if it is usable; else InvalidEvent with the reason."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"body is not valid JSON: {exc}"[:MAX_REASON]) from exc
    try:
        _VALIDATOR.validate(document)
    except jsonschema_rs.ValidationError as exc:
        raise InvalidEvent(describe(exc)) from exc
    except ValueError as exc:  # the validator's own limit: "Recursion limit reached"
        raise InvalidEvent(f"event: cannot be validated: {exc}"[:MAX_REASON]) from exc
    # JSON can only carry NUL escaped, so a raw scan finds every candidate cheaply.
    if b"\\u0000" in body and _has_nul(document):
        raise InvalidEvent("text contains \\u0000, which cannot be stored")
    result: dict[str, Any] = document
    return result


def parse_event(body: bytes) -> Event:
    document = judge(body)
    return Event(
        id=document["id"],
        type=document["type"],
        livemode=document["livemode"],
        created_at=document["created_at"],
    )


def describe(exc: jsonschema_rs.ValidationError) -> str:
    """The field as a path from the event's root, then what is wrong with it."""
    path = [str(part) for part in exc.instance_path]
    if isinstance(exc.kind, jsonschema_rs.ValidationErrorKind.Required):
        return f"{'.'.join([*path, str(exc.kind.property)])}: required"[:MAX_REASON]
    return f"{'.'.join(path) or 'event'}: {exc.message}"[:MAX_REASON]


def _has_nul(value: object) -> bool:
    """Iterative: a deeply nested body must not exhaust the interpreter's stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


@dataclass(frozen=True)
class Route:
    """What the receiver needs of a body to publish it: its key (the message id), its type (the
    routing key; None unless well-formed) and its mode."""

    key: str
    type: str | None
    livemode: bool | None


@dataclass(frozen=True)
class Peek:
    """What can be read safely from any body, usable or not."""

    key: str
    original_id: str | None  # the body's own id when the key is not that id
    type: str | None  # None unless well-formed (it becomes a routing key)
    livemode: bool | None
    created_at: datetime | None


def route(body: bytes) -> Route:
    """Never raises; as `peek`, without what only the archive needs (per request: kept lean)."""
    return _route(_fields(body), body)


def peek(body: bytes) -> Peek:
    """Never raises: routing and archiving must work for anything Conekta signed."""
    fields = _fields(body)
    routed, raw_id = _route(fields, body), fields.get("id")
    return Peek(
        key=routed.key,
        original_id=None if raw_id is None or raw_id == routed.key else _as_text(raw_id),
        type=routed.type,
        livemode=routed.livemode,
        created_at=_unix_time(fields.get("created_at")),
    )


def _route(fields: dict[str, Any], body: bytes) -> Route:
    """One home for the key, routing type and mode, so the receiver's message id is always the
    key the worker and the archive derive."""
    livemode = fields.get("livemode")
    return Route(
        key=event_key(fields.get("id"), body),
        type=routing_type(fields.get("type")),
        livemode=livemode if isinstance(livemode, bool) else None,
    )


def _fields(body: bytes) -> dict[str, Any]:
    """The body's top-level object; empty when it is not JSON or not an object."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def event_key(original_id: object, body: bytes) -> str:
    """The bounded key of an event with this id and body (see the module docstring)."""
    if isinstance(original_id, str) and original_id:
        if _PLAIN_ID.fullmatch(original_id):
            return original_id
        return "sha256:" + hashlib.sha256(original_id.encode("utf-8", "replace")).hexdigest()
    return "body:" + hashlib.sha256(body).hexdigest()


def routing_type(value: object) -> str | None:
    """The event type if it is well-formed, else None."""
    if isinstance(value, str) and len(value) <= MAX_TYPE_LENGTH and _TYPE.fullmatch(value):
        return value
    return None


def _as_text(value: object) -> str:
    """An id as text Postgres can hold (no NUL)."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text.replace("\x00", "\\u0000")


def _unix_time(value: object) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 32503680000:
        return datetime.fromtimestamp(value, UTC)
    return None
