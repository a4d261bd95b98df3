"""Console users are the owner's to write (issue 24, findings 3 and 7): `console add-user`,
`disable-user` and `remove-user` run as the owner; the console's role reads users and writes
none; disabling a user or changing its password ends its sessions, cookies and Basic alike."""

from __future__ import annotations

import contextlib
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import pytest

from console import users
from core.errors import ConektaIngestError
from core.settings import Settings
from store import Store
from testkit.isolation import database_url_for
from testkit.processes import cli
from testkit.services import OPERATOR, basic

Db: TypeAlias = "asyncpg.Connection[Any]"


async def test_disabling_or_a_new_password_ends_sessions_and_only_the_owner_writes_users(
    settings: Settings, store: Store, db: Db, template_database: str
) -> None:
    await users.add_user(store, "maria", "operator", "the first passphrase", "os:test")
    maria = await users.authenticate(store, "maria", "the first passphrase", "10.0.0.1")
    assert maria is not None
    before = await users.open_session(store, maria)
    assert await users.session(store, before.token) is not None

    # A new password (the owner's add-user again): the old session ends, a new login works.
    await users.add_user(store, "maria", "operator", "the second passphrase", "os:test")
    assert await users.session(store, before.token) is None
    assert await users.authenticate(store, "maria", "the first passphrase", "10.0.0.1") is None
    maria = await users.authenticate(store, "maria", "the second passphrase", "10.0.0.1")
    assert maria is not None
    after = await users.open_session(store, maria)

    # Disabled: the session ends and the right password no longer logs in.
    code, output = await cli(settings, "console", "disable-user", "maria")
    assert code == 0, output
    assert await users.session(store, after.token) is None
    assert await users.authenticate(store, "maria", "the second passphrase", "10.0.0.1") is None
    # Even a session row left behind (a copy restored, a race) does not count.
    await db.execute(
        "INSERT INTO console_sessions (token_hash, user_name, csrf_token, expires_at)"
        " VALUES ($1, 'maria', 'c', now() + interval '1 hour')",
        users.token_hash("left-behind"),
    )
    assert await users.session(store, "left-behind") is None

    # Enabled again by a new password; then removed.
    await users.add_user(store, "maria", "viewer", "the third passphrase", "os:test")
    assert await users.authenticate(store, "maria", "the third passphrase", "x") is not None
    code, output = await cli(settings, "console", "remove-user", "maria")
    assert code == 0, output
    assert await store.users.get("maria") is None
    code, output = await cli(settings, "console", "remove-user", "maria")
    assert code == 2 and "no console user 'maria'" in output
    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["user.add", "user.update", "user.disable", "user.update", "user.remove"]


async def test_the_console_role_cannot_add_or_change_users(
    settings: Settings, database_url: str, template_database: str
) -> None:
    """A compromised console (or worker) cannot make itself an operator."""
    name = "conekta_test_console"
    admin = await asyncpg.connect(database_url_for("postgres"))
    try:
        with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            await admin.execute(f"CREATE ROLE {name} LOGIN IN ROLE conekta_console")
    finally:
        await admin.close()
    host = database_url.split("@", 1)[1]
    async with Store.open(f"postgresql://{name}@{host}") as console_store:
        with pytest.raises(ConektaIngestError, match="permission denied for table console_users"):
            await users.add_user(console_store, "mallory", "operator", "a long password!", "x")


async def test_basic_credentials_stop_working_once_the_user_is_disabled(
    settings: Settings, console: str, store: Store
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{console}/api/v1/me", headers=basic(OPERATOR)) as answer:
            assert answer.status == 200
        await users.disable_user(store, OPERATOR[0], "os:test")
        async with session.get(f"{console}/api/v1/me", headers=basic(OPERATOR)) as answer:
            assert answer.status == 401
