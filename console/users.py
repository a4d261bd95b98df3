"""The console's people: passwords (scrypt), sessions, and the failed-login rate limit.

Passwords are stored as `scrypt$n$r$p$salt$hash` (hashlib's scrypt: memory-hard, no extra
dependency), compared in constant time. A session is a random token in an HttpOnly cookie; the
database keeps only its SHA-256, so reading the sessions table opens nothing.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from core.errors import BadRequest, ConektaIngestError
from ops import audit
from store import Store

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # about 32 MiB and 50-100 ms per check
# Each scrypt holds 32 MiB while it runs: at most two at once (64 MiB), whatever the burst; the
# rest wait their turn without memory of their own (the console's pod has 256 Mi).
SCRYPT_AT_ONCE = 2
SESSION_TTL = 12 * 3600.0
FAILURE_WINDOW = 15 * 60.0
# Failed logins are limited per user name *and* client address (a guesser elsewhere cannot lock
# the user out), and per address for any name.
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_REMOTE = 20
NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_PASSWORD = 12


class Role(StrEnum):
    VIEWER = "viewer"  # reads everything
    OPERATOR = "operator"  # and replays, purges


@dataclass(frozen=True)
class User:
    name: str
    role: Role

    @property
    def can_operate(self) -> bool:
        return self.role is Role.OPERATOR

    @property
    def actor(self) -> str:
        """Who this person is in the audit trail."""
        return audit.console_actor(self.name)


@dataclass(frozen=True)
class Session:
    token: str  # for the cookie only: never logged, never stored
    user: User
    csrf_token: str


class TooManyFailures(ConektaIngestError):
    """Too many failed logins for this name or address lately: try again later."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, _unb64(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def add_user(store: Store, name: str, role: str, password: str, actor: str) -> bool:
    """Create a user, or set an existing one's role and password; True when created."""
    if not NAME.fullmatch(name):
        raise BadRequest("a user name is 1-64 letters, digits or _ . @ -")
    if role not in set(Role):
        raise BadRequest(f"role must be one of {', '.join(Role)}")
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"a password has at least {MIN_PASSWORD} characters")
    hashed = await _scrypted(hash_password, password)
    created = await store.users.upsert(name, role, hashed)
    if not created:  # a new password ends the sessions opened with the old one
        await store.users.end_sessions(name)
    action = "user.add" if created else "user.update"
    await audit.record(store, actor, action, 1, {"target": name, "role": role})
    return created


async def disable_user(store: Store, name: str, actor: str) -> None:
    """The user can no longer log in and its sessions end (BadRequest when there is no such
    user); `add-user` with a new password enables it again. The owner's (grants.sql)."""
    if not await store.users.disable(name):
        raise BadRequest(f"no console user {name!r}")
    await audit.record(store, actor, "user.disable", 1, {"target": name})


async def remove_user(store: Store, name: str, actor: str) -> None:
    """The user and its sessions are gone (BadRequest when there is no such user); the audit
    trail keeps what it did, under its name. The owner's (grants.sql)."""
    if not await store.users.remove(name):
        raise BadRequest(f"no console user {name!r}")
    await audit.record(store, actor, "user.remove", 1, {"target": name})


async def authenticate(store: Store, name: str, password: str, remote: str) -> User | None:
    """The user when the password is right; None when not; TooManyFailures when rate-limited.

    A wrong name costs the same hash as a wrong password, so timing tells no names. The attempt
    is recorded (as a failure) before the password is checked and forgiven when it was right:
    of 12 parallel guesses at most MAX_FAILURES_PER_USER are checked, the rest are refused.
    """
    by_user, by_remote = await store.users.begin_login(name, remote, FAILURE_WINDOW)
    if by_user > MAX_FAILURES_PER_USER or by_remote > MAX_FAILURES_PER_REMOTE:
        raise TooManyFailures("too many failed logins; wait 15 minutes")
    row = await store.users.get(name)
    stored = row["password_hash"] if row else await _scrypted(_dummy_hash)
    ok = await _check(password, stored) and row is not None
    if ok and row:
        await store.users.forgive_logins(name, remote)
        return User(row["name"], Role(row["role"]))
    await store.users.prune_logins()
    return None


_SCRYPT_POOL = ThreadPoolExecutor(max_workers=SCRYPT_AT_ONCE, thread_name_prefix="scrypt")
T = TypeVar("T")


async def _scrypted(function: Callable[..., T], *args: Any) -> T:
    """`function` (a password hash or check) on the scrypt threads: SCRYPT_AT_ONCE at a time."""
    return await asyncio.get_running_loop().run_in_executor(_SCRYPT_POOL, function, *args)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


# Scripts using HTTP Basic send the password with every call: a right password is remembered
# for a few minutes (keyed by a hash of the stored hash and the password, so a changed password
# is checked again), instead of spending a second of scrypt on each request.
VERIFIED_TTL = 300.0
_verified: dict[bytes, float] = {}


async def _check(password: str, stored: str) -> bool:
    key = hashlib.sha256(f"{stored}\0{password}".encode()).digest()
    now = time.monotonic()
    if _verified.get(key, 0.0) > now:
        return True
    ok = await _scrypted(check_password, password, stored)
    if ok:
        if len(_verified) > 1000:
            _verified.clear()
        _verified[key] = now + VERIFIED_TTL
    return ok


async def open_session(store: Store, user: User) -> Session:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    await store.users.create_session(token_hash(token), user.name, csrf, SESSION_TTL)
    return Session(token, user, csrf)


async def session(store: Store, token: str) -> Session | None:
    row = await store.users.session(token_hash(token))
    if row is None:
        return None
    return Session(token, User(row["name"], Role(row["role"])), row["csrf_token"])


async def close_session(store: Store, token: str) -> None:
    await store.users.delete_session(token_hash(token))
