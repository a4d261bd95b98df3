"""What the receiver accepts: a JSON event that passes `schemas/event.json`.

Only the few fields routing needs are kept; the raw bytes travel on untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import jsonschema_rs
import orjson

import schemas
from core.errors import InvalidEvent

PING_TYPE = "webhook_ping"

_VALIDATOR = jsonschema_rs.validator_for(schemas.load("event.json"))


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    livemode: bool
    created_at: int


def parse_event(body: bytes) -> Event:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"body is not valid JSON: {exc}") from exc
    try:
        _VALIDATOR.validate(document)
    except jsonschema_rs.ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from exc
    # JSON can only carry NUL escaped, so a raw scan finds every candidate cheaply.
    if b"\\u0000" in body and _has_nul(document):
        raise InvalidEvent("text contains \\u0000, which cannot be stored")
    return Event(
        id=document["id"],
        type=document["type"],
        livemode=document["livemode"],
        created_at=document["created_at"],
    )


def _describe(exc: jsonschema_rs.ValidationError) -> str:
    """The field as a path from the event's root, then what is wrong with it."""
    field = ".".join(["event", *(str(part) for part in exc.instance_path)])
    return f"{field}: {exc.message}"


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
