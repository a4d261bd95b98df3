"""The console's people: users, their sessions, and failed logins."""

from __future__ import annotations

from core import database
from core.database import Record
from store import sql


class Users(sql.Room):
    async def upsert(self, name: str, role: str, password_hash: str) -> bool:
        """True when the user is new (else its role and password were replaced)."""
        async with database.transaction(self.pool) as connection:
            row = await sql.fetchrow(
                connection, "upsert_user", user_name=name, role=role, password_hash=password_hash
            )
            return bool(row and row["created"])

    async def disable(self, name: str) -> bool:
        """The owner's: the user can no longer log in, its sessions end; whether it exists."""
        async with database.transaction(self.pool) as connection:
            return bool(await sql.fetchval(connection, "disable_user", user_name=name))

    async def remove(self, name: str) -> bool:
        """The owner's: the user and its sessions gone; whether it existed."""
        async with database.transaction(self.pool) as connection:
            return bool(await sql.fetchval(connection, "remove_user", user_name=name))

    async def end_sessions(self, name: str) -> None:
        """The owner's: every session of a user ends (its password changed)."""
        async with database.transaction(self.pool) as connection:
            await sql.execute(connection, "end_sessions", user_name=name)

    async def get(self, name: str) -> Record | None:
        return await self._read_row("get_user", user_name=name)

    async def create_session(
        self, token_hash: bytes, user_name: str, csrf_token: str, ttl: float
    ) -> None:
        async with database.transaction(self.pool) as connection:
            await sql.execute(connection, "delete_expired_sessions")
            await sql.execute(
                connection,
                "insert_session",
                token_hash=token_hash,
                user_name=user_name,
                csrf_token=csrf_token,
                ttl=ttl,
            )

    async def session(self, token_hash: bytes) -> Record | None:
        return await self._read_row("get_session", token_hash=token_hash)

    async def delete_session(self, token_hash: bytes) -> None:
        async with database.transaction(self.pool) as connection:
            await sql.execute(connection, "delete_session", token_hash=token_hash)

    async def begin_login(self, user_name: str, remote: str, window: float) -> tuple[int, int]:
        """Record a login attempt as a failure *before* its password is checked, then count the
        recent ones from this address (for this name, for any name), this one included. Two
        statements, each committed: every count sees every attempt recorded before it, so of N
        parallel guesses the k-th counts at least k and no more than the limit get checked."""
        async with self.pool.acquire() as connection:
            await sql.execute(
                connection, "insert_login_attempt", user_name=user_name, remote=remote
            )
            row = await sql.fetchrow(
                connection,
                "count_login_attempts",
                user_name=user_name,
                remote=remote,
                window=window,
            )
        return (int(row["by_user"]), int(row["by_remote"])) if row else (0, 0)

    async def forgive_logins(self, user_name: str, remote: str) -> None:
        """A right password: this name's failures from this address (this attempt's too) go."""
        async with database.transaction(self.pool) as connection:
            await sql.execute(
                connection, "forgive_login_attempts", user_name=user_name, remote=remote
            )

    async def prune_logins(self) -> None:
        async with database.transaction(self.pool) as connection:
            await sql.execute(connection, "prune_login_attempts")
