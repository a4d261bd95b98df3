"""JSON Schemas of what the service accepts (Conekta events) and emits (fulfillment messages)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson


def load(name: str) -> dict[str, Any]:
    """A schema from this folder by file name, e.g. `load("event.json")`."""
    text = resources.files(__name__).joinpath(name).read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema
