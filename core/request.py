"""What the archive keeps of a webhook's HTTP request: the peer address and its headers, without
credentials and bounded in size; pure.

The receiver passes it to the worker as the AMQP header `request`, JSON text of {"remote": ...,
"headers": {lowercased name: value}}; the worker reads it again through `from_header`, which
applies the same rules (the header may come from elsewhere: a replayed dead letter, another
publisher).

Kept: an allowlist of what helps forensics: content type and length, user agent, DIGEST (the
signature is public and lets anyone verify the body again later), the forwarded-for/proto a proxy
adds, request ids, and Conekta's own `conekta-*` / `x-conekta-*` headers. Nothing else: a proxy
in front may add a credential under any name (`cf-access-jwt-assertion`, `x-amzn-oidc-data`,
...), so a denylist can never be complete. Even on the allowlist, a name that looks like a
credential (auth, token, secret, password, api-key, session, cookie) is dropped. Bounded: a
hostile client must not make the message big.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson

HEADER = "request"  # the AMQP header's name
MAX_HEADERS = 32
MAX_NAME = 64  # bytes; a longer name is dropped (no real header is that long)
MAX_VALUE = 1024  # bytes; a longer value is truncated
MAX_TOTAL = 4096  # bytes of names and values together; headers past it are dropped
MAX_REMOTE = 64  # an IPv6 address with zone fits

KEPT_NAMES = frozenset(
    {
        "content-type",
        "content-length",
        "user-agent",
        "digest",
        "x-forwarded-for",
        "x-forwarded-proto",
        "forwarded",
        "x-request-id",
        "request-id",
        "x-correlation-id",
    }
)
KEPT_PREFIXES = ("conekta-", "x-conekta-")  # Conekta's own headers
DENIED_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "cookie2"})
# Even on the allowlist (a Conekta prefix), a name containing any of these can carry a
# credential ('_' is read as '-').
DENIED_PARTS = (
    "auth",
    "token",
    "secret",
    "password",
    "passwd",
    "api-key",
    "apikey",
    "session",
    "cookie",
    "credential",
)


@lru_cache(maxsize=512)
def allowed(name: str) -> bool:
    """Whether a (lowercased) header name may be kept. Cached: a few names, over and over."""
    if name in DENIED_NAMES or not 0 < len(name) <= MAX_NAME:
        return False
    if not (name.isascii() and name.isprintable()):  # HTTP names are ASCII tokens
        return False
    plain = name.replace("_", "-")
    if plain not in KEPT_NAMES and not plain.startswith(KEPT_PREFIXES):
        return False
    return not any(part in plain for part in DENIED_PARTS)


# Control characters (but tab) become '?': jsonb refuses NUL, and JSON would write each of them
# as six bytes (\u0001), past the size bound.
_CONTROLS = str.maketrans({c: "?" for c in [*range(0x20), 0x7F] if c != 0x09})


def clean(text: str, limit: int) -> str:
    """`text` as valid UTF-8 of at most `limit` bytes, without control characters."""
    if text.isascii():  # O(1) in CPython: the usual case costs a slice at most
        if len(text) > limit:
            text = text[:limit]
    else:  # lone surrogates (undecodable bytes) become '?'; cut on a character boundary
        raw = text[:limit].encode("utf-8", "replace")[:limit]
        text = raw.decode("utf-8", "ignore")
    return text if text.isprintable() else text.translate(_CONTROLS)


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def select(remote: object, headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The request as the archive keeps it; never raises. Repeated names are joined with ", "
    (as HTTP allows). Per request on the receiver: keep it cheap (no regex, few calls)."""
    kept: dict[str, str] = {}
    budget = MAX_TOTAL  # bytes of names and values
    for name, value in headers:
        key = name.lower()
        if not allowed(key):
            continue
        if key in kept:
            joined = clean(f"{kept[key]}, {value}", MAX_VALUE)
            budget -= _size(joined) - _size(kept[key])
            if budget < 0:
                break
            kept[key] = joined
            continue
        if len(kept) >= MAX_HEADERS:
            break
        room = min(MAX_VALUE, budget - len(key))
        if not (value.isascii() and len(value) <= room and value.isprintable()):
            value = clean(value, max(room, 0))
        budget -= len(key) + _size(value)
        if budget < 0:
            break
        kept[key] = value
    address = clean(remote, MAX_REMOTE) if isinstance(remote, str) else None
    return {"remote": address, "headers": kept}


def encode(request: dict[str, Any]) -> str:
    """The AMQP header's value: JSON text. One string is far cheaper for the receiver to encode
    (and the worker to decode) than a nested AMQP table, and a dead letter's JSON keeps it as is."""
    return orjson.dumps(request).decode()


def from_header(value: object) -> dict[str, Any] | None:
    """The `request` header as the worker reads it (JSON text, or a table from elsewhere): the
    same rules again; None when missing or not of the receiver's shape."""
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(value, Mapping):
        return None
    headers = value.get("headers")
    if not isinstance(headers, Mapping):
        return None
    strings = [(k, v) for k, v in headers.items() if isinstance(k, str) and isinstance(v, str)]
    return select(value.get("remote"), strings)
