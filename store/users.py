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

    async def login_failures(self, user_name: str, remote: str, window: float) -> tuple[int, int]:
        """Recent failed logins (for this user name, from this address)."""
        row = await self._read_row(
            "count_login_failures", user_name=user_name, remote=remote, window=window
        )
        return (int(row["by_user"]), int(row["by_remote"])) if row else (0, 0)

    async def record_login(self, user_name: str, remote: str, *, ok: bool) -> None:
        async with database.transaction(self.pool) as connection:
            if ok:
                await sql.execute(connection, "clear_login_failures", user_name=user_name)
            else:
                await sql.execute(connection, "prune_login_failures")
                await sql.execute(
                    connection, "insert_login_failure", user_name=user_name, remote=remote
                )
