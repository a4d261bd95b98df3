"""Event bodies drawn from `schemas/event.json` itself: every type the schema allows at every path.

Where the schema names a type (or a pattern, a range), only what it admits is drawn; where it
names none (an unconstrained field, or a field it does not list but the domain reads: `READ`),
any JSON value is. So a body drawn here either passes the worker's judge or is archived
`invalid`; the domain must then decide it without raising anything but the project's own errors
(tests/unit/test_domain_total.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import schemas

SCHEMA: dict[str, Any] = schemas.load("event.json")
DOMAIN_DIRECTORY = Path(__file__).resolve().parent.parent / "domain"
# Event types the worker applies, and a few it does not.
TYPES = (
    "order.created",
    "order.pending_payment",
    "order.paid",
    "order.partially_refunded",
    "order.refunded",
    "order.expired",
    "order.canceled",
    "order.declined",
    "order.voided",
    "order.charged_back",
    "charge.refunded",
    "charge.paid",
    "charge.chargeback.created",
    "charge.chargeback.updated",
    "charge.chargeback.under_review",
    "charge.chargeback.won",
    "charge.chargeback.lost",
    "customer.created",
)
STATUSES = ("paid", "pending_payment", "refunded", "partially_refunded", "won", "lost", "expired")
_READ_KEY = re.compile(r"""(?:\.get\(|\[)\s*"([a-z_]+)"\s*[,)\]]""")


def fields_read() -> tuple[str, ...]:
    """Every field name the domain reads from a body (`.get("x")`, `["x"]`): each is drawn, with
    any JSON value, in every object the schema leaves open, so a read the schema does not type
    meets every type."""
    names: set[str] = set()
    for path in sorted(DOMAIN_DIRECTORY.glob("*.py")):
        names.update(_READ_KEY.findall(path.read_text()))
    return tuple(sorted(names))


READ = fields_read()

# NUL cannot be stored (the judge archives such a body `invalid`): drawn apart, rarely.
_CHARACTERS = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
_CURRENCY = "^[A-Z]{3}$"
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_CHARACTERS, max_size=12)
)
ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(_CHARACTERS, max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def event_bodies() -> st.SearchStrategy[dict[str, Any]]:
    """Whole event documents: the envelope as the schema says, `data.object` as the schema's
    branch for the drawn type says."""
    return st.sampled_from(TYPES).flatmap(_event_of_type)


def _event_of_type(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    envelope = {
        name: strategy(schema)
        for name, schema in SCHEMA["properties"].items()
        if name not in ("type", "data")
    }
    data = st.fixed_dictionaries(
        {"object": _data_object(event_type)}, optional=_open_fields(exclude={"object"})
    )
    return st.fixed_dictionaries({**envelope, "type": st.just(event_type), "data": data})


def _data_object(event_type: str) -> st.SearchStrategy[Any]:
    definitions = SCHEMA["definitions"]
    if event_type.startswith("order."):
        return strategy(definitions["order"])
    if event_type == "charge.refunded":
        return strategy({"allOf": [definitions["charge"], {"required": ["order_id", "currency"]}]})
    if event_type.startswith("charge.chargeback."):
        return strategy(definitions["chargeback"])
    return ANY_JSON


def strategy(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """What `schema` admits (the subset of JSON Schema that schemas/event.json uses)."""
    if "$ref" in schema:
        return strategy(_resolve(schema["$ref"]))
    if "allOf" in schema:
        return strategy(_merge([_deref(part) for part in schema["allOf"]]))
    if "anyOf" in schema:
        return st.one_of([strategy(part) for part in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    kinds = schema.get("type")
    if kinds is None:
        return ANY_JSON
    if isinstance(kinds, list):
        return st.one_of([strategy({**schema, "type": kind}) for kind in kinds])
    typed: Callable[[Mapping[str, Any]], st.SearchStrategy[Any]] = _TYPED[kinds]
    return typed(schema)


def _object(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fixed = {name: _property(properties, name) for name in sorted(required)}
    optional = {name: _property(properties, name) for name in properties if name not in required}
    extra = _open_fields(exclude=set(properties) | required)
    return st.fixed_dictionaries(fixed, optional={**extra, **optional})


def _property(properties: Mapping[str, Any], name: str) -> st.SearchStrategy[Any]:
    drawn = strategy(properties[name]) if name in properties else ANY_JSON
    # Free text the domain compares with a few values: those values, often (else a paid charge
    # would almost never be drawn), and anything the schema admits.
    return st.sampled_from(STATUSES) | drawn if name in ("status", "payment_status") else drawn


def _open_fields(exclude: set[str]) -> dict[str, st.SearchStrategy[Any]]:
    return {name: ANY_JSON for name in READ if name not in exclude}


def _array(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    items = strategy(schema.get("items", {}))
    return st.lists(items, max_size=min(schema.get("maxItems", 3), 3))


def _string(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    longest = min(schema.get("maxLength", 20), 20)
    if schema.get("pattern") == _CURRENCY:  # mostly the ones the ledger keeps
        return st.sampled_from(("MXN", "USD")) | st.from_regex(_CURRENCY, fullmatch=True)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(
            lambda text: len(text) <= schema.get("maxLength", 10_000)
        )
    return st.text(_CHARACTERS, min_size=schema.get("minLength", 0), max_size=max(longest, 1))


def _integer(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    return st.integers(schema.get("minimum", -(2**63)), schema.get("maximum", 2**63 - 1))


def _number(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    return _integer(schema) | st.floats(
        schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
    )


_TYPED: dict[str, Callable[[Mapping[str, Any]], st.SearchStrategy[Any]]] = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": lambda _: st.booleans(),
    "null": lambda _: st.none(),
}


def _resolve(reference: str) -> dict[str, Any]:
    node: Any = SCHEMA
    for part in reference.removeprefix("#/").split("/"):
        node = node[part]
    resolved: dict[str, Any] = node
    return resolved


def _deref(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    return _resolve(schema["$ref"]) if "$ref" in schema else schema


def _merge(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """allOf of object schemas: their properties and required fields together."""
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in parts:
        merged["properties"].update(part.get("properties", {}))
        merged["required"] += [n for n in part.get("required", ()) if n not in merged["required"]]
    return merged
