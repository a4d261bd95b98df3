"""The store: the only module that runs the project's SQL (worker/queries/*.sql), by name.

Queries take named parameters (`:ids`); rows are written column by column from the domain's
dataclasses, each table's column list spelled once below. Driver errors come out as the
project's own (core.errors) through core.database.

Lock order, the same in every transaction, so concurrent workers cannot deadlock: existing
orders by id, then new orders by id (insert), then balances by (account, currency).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import orjson
import structlog

from core import database
from core.database import Connection, Pool, Record
from core.errors import TransientDatabaseError
from domain import ledger
from domain.archive import ArchiveRow
from domain.fulfillment import OrderView
from domain.ledger import Posting
from domain.order_state import OrderState
from domain.outcome import Outcome
from domain.plan import ALL_MODES, Booked, Incoming, Plan, plan_batch
from worker import metrics

log = structlog.get_logger(__name__)

ORDER_INSERT_COLUMNS = (
    "id",
    "status",
    "amount",
    "currency",
    "customer_key",
    "livemode",
    "last_event_id",
    "last_event_created_at",
)
ORDER_UPDATE_COLUMNS = tuple(c for c in ORDER_INSERT_COLUMNS if c != "livemode")
ARCHIVE_COLUMNS = (
    "event_id",
    "type",
    "order_id",
    "livemode",
    "created_at",
    "received_at",
    "outcome",
    "body",
    "original_id",
    "reason",
    "request",
)
BACKFILL_COLUMNS = ("event_id", "type", "livemode", "created_at")
# One reconcile at a time, across processes (a session-level advisory lock).
RECONCILE_LOCK = 0x7265636F6E63  # "reconc"
POSTING_COLUMNS = (
    "business_key",
    "kind",
    "order_id",
    "charge_id",
    "currency",
    "livemode",
    "event_id",
    "effective_at",
    "amount",
)
CHARGEBACK_COLUMNS = (
    "id",
    "livemode",
    "charge_id",
    "order_id",
    "status",
    "amount",
    "currency",
    "last_event_id",
    "last_event_created_at",
)
OUTBOX_COLUMNS = ("message_id", "routing_key", "body")
_RESTORE = {"events": "restore_events", "outbox": "restore_outbox"}  # exported table -> query
DEAD_LETTER_COLUMNS = (
    "message_id",
    "type",
    "order_id",
    "kind",
    "reason",
    "attempts",
    "first_failed_at",
    "last_failed_at",
    "source_queue",
    "exchange",
    "routing_key",
    "headers",
    "body",
)


OUTBOX_RELAY_LOCK = 0x6F7574626F78  # "outbox": the advisory lock of the one active relay


@dataclass(frozen=True)
class Query:
    sql: str  # with asyncpg's $n
    params: tuple[str, ...]  # the name of $1, $2, ...

    def args(self, values: dict[str, Any]) -> list[Any]:
        missing = set(self.params) - set(values)
        if missing or set(values) - set(self.params):
            raise TypeError(f"query parameters {self.params}, given {tuple(values)}")
        return [values[name] for name in self.params]


_HEADER = re.compile(r"^-- (\w+): .+$", re.MULTILINE)
# A :name not preceded by ':' (a ::cast) and outside quoted literals.
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def compile_query(text: str) -> Query:
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    # Whole-line comments go first: an apostrophe in one ("the account's") would flip the
    # quote tracking below and hide every parameter after it.
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    pieces = text.split("'")
    pieces[::2] = [_PARAM.sub(number, piece) for piece in pieces[::2]]  # even: outside quotes
    return Query("'".join(pieces), tuple(names))


def load_queries() -> dict[str, Query]:
    """Every named query of worker/queries/*.sql (one file per concept); names are unique."""
    queries: dict[str, Query] = {}
    folder = resources.files("worker").joinpath("queries")
    for file in sorted(folder.iterdir(), key=lambda f: f.name):
        if not file.name.endswith(".sql"):
            continue
        parts = _HEADER.split(file.read_text())  # [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise ValueError(f"query {name} defined twice ({file.name})")
            queries[name] = compile_query(body.strip())
    return queries


QUERIES = load_queries()


def columns(rows: Sequence[object], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows of dataclasses as one list per column, for the unnest(...) inserts."""
    return {name: [getattr(row, name) for row in rows] for name in names}


class ConcurrentOrderInsert(TransientDatabaseError):
    """Another worker created one of our new orders first: retry and see its state."""


class Store:
    """Named queries over a pool. Methods that write open their own transaction."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, *, max_size: int = 2, custom_plans: bool = False
    ) -> AsyncIterator[Store]:
        """A store on a small pool of its own (one-shot commands, the console)."""
        pool = await database.create_pool(url, max_size=max_size, custom_plans=custom_plans)
        try:
            yield cls(pool)
        finally:
            await pool.close()

    # -- the write path -------------------------------------------------------------------------

    async def apply_batch(
        self,
        items: Sequence[Incoming],
        *,
        replay: bool = False,
        modes: Collection[bool] = ALL_MODES,
    ) -> list[Outcome]:
        """Outcomes per item, in order, once committed.

        `replay` re-applies events already in the archive (after a fix, or to rebuild
        projections): the id check is skipped; order rules and business keys keep it idempotent.
        `modes`: the livemodes accepted (CONEKTA_ACCEPT_MODES); others are archived `other_mode`.
        """
        async with database.transaction(self.pool) as connection:
            plan = await _apply_batch(connection, items, replay=replay, modes=modes)
        _report(plan)
        return plan.outcomes

    async def archive(self, rows: Sequence[ArchiveRow]) -> None:
        """Store raw events with their outcome (an id already archived is left as it is)."""
        async with database.transaction(self.pool) as connection:
            await _write_archive(connection, rows)

    async def rejudge(
        self,
        items: Sequence[Incoming],
        rows: Sequence[ArchiveRow],
        modes: Collection[bool] = ALL_MODES,
    ) -> list[Outcome]:
        """`invalid` archive rows judged again, in one transaction: `items` go
        through the order path (as a replay: their ids are archived already), `rows` (still
        invalid, or ignored) are archived; each archive row takes its new outcome and reason.
        The outcomes of `items`, in order."""
        async with database.transaction(self.pool) as connection:
            plan = await _apply_batch(connection, items, replay=True, modes=modes)
            await _write_archive(connection, rows)
        _report(plan)
        return plan.outcomes

    # -- dead letters and the audit trail --------------------------------------------------------

    async def insert_dead_letters(self, rows: Sequence[object]) -> None:
        async with database.transaction(self.pool) as connection:
            await _execute(connection, "insert_dead_letters", **columns(rows, DEAD_LETTER_COLUMNS))

    async def dead_letters(self, **filters: str | None) -> list[Record]:
        """Open dead letters, oldest first; filters (event_type, kind, order_id) may be None."""
        params = {"event_type": None, "kind": None, "order_id": None, **filters}
        return await self._read("list_dead_letters", **params)

    async def dead_letter(self, message_id: str) -> list[Record]:
        return await self._read("get_dead_letters", message_id=message_id)

    async def dead_letter_bodies(self) -> list[Record]:
        return await self._read("dead_letter_bodies")

    async def dead_letter_count(self) -> int:
        rows = await self._read("dead_letter_count")
        return int(rows[0][0])

    @asynccontextmanager
    async def settle_dead_letters(
        self,
        ids: Sequence[str],
        everything: bool,
        event_type: str | None = None,
        kind: str | None = None,
        order_id: str | None = None,
    ) -> AsyncIterator[DeadLetterClaim]:
        """Open dead letters by selection (ids, every one, or all matching every filter given),
        locked until the block ends (one transaction)."""
        async with database.transaction(self.pool) as connection:
            rows = await _fetch(
                connection,
                "select_dead_letters",
                ids=list(ids),
                everything=everything,
                event_type=event_type,
                kind=kind,
                order_id=order_id,
            )
            yield DeadLetterClaim(connection, rows)

    async def record_audit(
        self, actor: str, action: str, count: int, details: dict[str, Any]
    ) -> Record:
        async with database.transaction(self.pool) as connection:
            return await _record_audit(connection, actor, action, count, details)

    async def audit_log(self, since: datetime | None) -> list[Record]:
        return await self._read("list_audit", since=since)

    # -- the outbox -----------------------------------------------------------------------------

    @asynccontextmanager
    async def claim_outbox(self, limit: int) -> AsyncIterator[OutboxClaim]:
        """Unsent messages, oldest first, locked until the block ends. Only one relay (of all
        workers) holds a claim at a time: another gets no rows and tries again later."""
        async with database.transaction(self.pool) as connection:
            locked = await _fetchrow(connection, "lock_outbox_relay", key=OUTBOX_RELAY_LOCK)
            held = locked is not None and locked[0]
            rows = await _fetch(connection, "claim_outbox", limit=limit) if held else []
            yield OutboxClaim(connection, rows)

    # -- reconcile ------------------------------------------------------------------------------

    @asynccontextmanager
    async def reconcile_lock(self, *, wait: bool) -> AsyncIterator[ReconcileSession | None]:
        """The reconcile lock on a connection of its own, held until the block ends; None when
        another run holds it and `wait` is false (else poll until it is free)."""
        async with self.pool.acquire() as connection:
            while not await _fetchval(connection, "reconcile_try_lock", key=RECONCILE_LOCK):
                if not wait:
                    yield None
                    return
                await asyncio.sleep(1.0)
            try:
                yield ReconcileSession(connection)
            finally:
                await _fetchval(connection, "reconcile_unlock", key=RECONCILE_LOCK)

    async def last_reconcile(self) -> Record | None:
        """The newest successful (not dry) reconcile run."""
        async with self.pool.acquire() as connection:
            return await _fetchrow(connection, "reconcile_last_run")

    async def archived_by_day(self, since: datetime, until: datetime) -> list[Record]:
        return await self._read("stats_archived", since=since, until=until)

    async def window_counts(
        self, since: datetime, until: datetime, livemode: bool | None
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Per type, in a window: archived events, and backfilled events not archived yet."""
        archived = await self._read(
            "stats_window_archived", since=since, until=until, livemode=livemode
        )
        pending = await self._read("stats_window_backfilled_unarchived", since=since, until=until)
        return (
            {r["type"]: r["events"] for r in archived},
            {r["type"]: r["events"] for r in pending},
        )

    async def orders_updated_since(self, since: datetime) -> list[str]:
        return [r["id"] for r in await self._read("orders_updated_since", since=since)]

    # -- the read side --------------------------------------------------------------------------

    async def order(self, order_id: str) -> Record | None:
        async with self.pool.acquire() as connection:
            return await _fetchrow(connection, "get_order", order_id=order_id)

    async def order_events(self, order_id: str) -> list[Record]:
        return await self._read("order_events", order_id=order_id)

    async def order_money(self, order_id: str) -> Record | None:
        async with self.pool.acquire() as connection:
            return await _fetchrow(connection, "order_money", order_id=order_id)

    async def order_chargebacks(self, order_id: str) -> list[Record]:
        return await self._read("order_chargebacks", order_id=order_id)

    async def balances(self, *, at: datetime | None, livemode: bool | None) -> list[Record]:
        if at is None:
            return await self._read("list_balances", livemode=livemode)
        return await self._read("balances_at", at=at, livemode=livemode)

    async def entries(
        self,
        *,
        account: str | None,
        since: datetime | None,
        until: datetime | None,
        livemode: bool | None,
    ) -> list[Record]:
        return await self._read(
            "list_entries", account=account, since=since, until=until, livemode=livemode
        )

    async def event(self, event_id: str) -> Record | None:
        async with self.pool.acquire() as connection:
            return await _fetchrow(connection, "get_event", event_id=event_id)

    async def events_page(
        self,
        *,
        handled_types: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        event_type: str | None,
        order_id: str | None,
        after: tuple[datetime, str],
        limit: int,
        include_purged: bool = False,
    ) -> list[Record]:
        """Archived events of handled types in Conekta's order, a page after the cursor."""
        return await self._read(
            "replay_events",
            handled_types=list(handled_types),
            since=since,
            until=until,
            event_type=event_type,
            order_id=order_id,
            after_created_at=after[0],
            after_event_id=after[1],
            limit=limit,
            include_purged=include_purged,
        )

    async def events_of_outcome(
        self, outcome: str, *, since: datetime | None, after: tuple[datetime, str], limit: int
    ) -> list[Record]:
        """Archived events of one outcome, without bodies, a page after the cursor."""
        return await self._read(
            "list_events",
            outcome=outcome,
            since=since,
            after_created_at=after[0],
            after_event_id=after[1],
            limit=limit,
        )

    async def invalid_events(
        self, *, after: tuple[datetime, str], limit: int, bodies: bool, **selection: Any
    ) -> list[Record]:
        """`invalid` events of a selection (ids, event_type, since, until), a page after the
        cursor; with their bodies when asked."""
        return await self._read(
            "invalid_events",
            after_created_at=after[0],
            after_event_id=after[1],
            limit=limit,
            bodies=bodies,
            **selection,
        )

    async def count_invalid_events(self, **selection: Any) -> int:
        rows = await self._read("count_invalid_events", **selection)
        return int(rows[0][0])

    @asynccontextmanager
    async def claim_invalid_events(self, **selection: Any) -> AsyncIterator[InvalidClaim]:
        """The `invalid` events of a selection (no bodies), locked until the block ends (one
        transaction)."""
        async with database.transaction(self.pool) as connection:
            rows = await _fetch(connection, "lock_invalid_events", **selection)
            yield InvalidClaim(connection, rows)

    async def violations(self, checks: Sequence[str]) -> list[list[Record]]:
        """The rows violating each named check, read in one consistent snapshot."""
        async with (
            self.pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            return [await _fetch(connection, check) for check in checks]

    # -- retention (as the owner of the tables) ------------------------------------------------

    async def create_partitions(
        self, keys: dict[str, str], first_month: date, last_month: date
    ) -> None:
        """Month partitions of each table (name -> partition key column), where missing."""
        await self._read(
            "create_partitions",
            parents=list(keys),
            keys=list(keys.values()),
            first_month=first_month,
            last_month=last_month,
        )

    async def months(self, table: str) -> list[date]:
        return [row["month"] for row in await self._read("list_months", parent=table)]

    async def month_summary(self, table: str, month: date) -> tuple[int, Decimal]:
        async with self.pool.acquire() as connection:
            row = await _fetchrow(connection, "month_summary", parent=table, month=month)
        assert row is not None
        return int(row["rows"]), Decimal(row["checksum"])

    async def month_lines(self, table: str, month: date) -> AsyncIterator[str]:
        """A month's rows as JSON lines, streamed through a cursor."""
        query = QUERIES["month_rows"]
        async with database.transaction(self.pool) as connection:
            args = query.args({"parent": table, "month": month})
            async for row in connection.cursor(query.sql, *args, prefetch=1000):
                yield row["line"]

    async def unsent_in_month(self, month: date) -> int:
        async with self.pool.acquire() as connection:
            row = await _fetchrow(connection, "unsent_in_month", month=month)
        return int(row[0]) if row else 0

    async def drop_month(self, table: str, month: date, rows: int, checksum: Decimal) -> None:
        """Drop the month's partition if it still holds exactly `rows` rows with `checksum`."""
        async with database.transaction(self.pool) as connection:
            await _execute(
                connection, "drop_month", parent=table, month=month, rows=rows, checksum=checksum
            )

    async def forget_event_ids(self, before: datetime, limit: int) -> int:
        """Forget up to `limit` ids archived before `before` whose rows are pruned (a batch, one
        transaction); how many."""
        async with database.transaction(self.pool) as connection:
            return int(await _fetchval(connection, "forget_event_ids", before=before, limit=limit))

    async def restore(self, table: str, lines: Sequence[str]) -> None:
        """Exported rows back into their table (and month partition), in one transaction."""
        async with database.transaction(self.pool) as connection:
            await _execute(connection, _RESTORE[table], lines=list(lines))

    # -- what on-call looks at (worker/explore.py) -----------------------------------------------

    async def search_events(self, **filters: Any) -> list[Record]:
        """Filters: event_id, order_id, customer, event_type, outcome, since, until, the cursor
        after_created_at/after_event_id, limit (see explore.sql: search_events)."""
        return await self._read("search_events", **filters)

    async def outcome_counts(self, since: datetime) -> list[Record]:
        return await self._read("outcome_counts", since=since)

    async def outcome_descriptions(self) -> list[Record]:
        return await self._read("outcome_descriptions")

    async def search_orders(self, **filters: Any) -> list[Record]:
        return await self._read("search_orders", **filters)

    async def order_postings(self, order_id: str) -> list[Record]:
        return await self._read("order_postings", order_id=order_id)

    async def outbox_messages(self, message_ids: Sequence[str]) -> list[Record]:
        return await self._read("outbox_messages", message_ids=list(message_ids))

    async def outbox_backlog(self) -> int:
        rows = await self._read("outbox_backlog")
        return int(rows[0][0])

    async def ledger_entries(self, **filters: Any) -> list[Record]:
        return await self._read("ledger_entries_page", **filters)

    # -- the console's people -----------------------------------------------------

    async def ping(self) -> None:
        await self._read("ping")

    async def upsert_user(self, name: str, role: str, password_hash: str) -> bool:
        """True when the user is new (else its role and password were replaced)."""
        async with database.transaction(self.pool) as connection:
            row = await _fetchrow(
                connection, "upsert_user", user_name=name, role=role, password_hash=password_hash
            )
            return bool(row and row["created"])

    async def user(self, name: str) -> Record | None:
        async with self.pool.acquire() as connection:
            return await _fetchrow(connection, "get_user", user_name=name)

    async def create_session(
        self, token_hash: bytes, user_name: str, csrf_token: str, ttl: float
    ) -> None:
        async with database.transaction(self.pool) as connection:
            await _execute(connection, "delete_expired_sessions")
            await _execute(
                connection,
                "insert_session",
                token_hash=token_hash,
                user_name=user_name,
                csrf_token=csrf_token,
                ttl=ttl,
            )

    async def session(self, token_hash: bytes) -> Record | None:
        async with self.pool.acquire() as connection:
            return await _fetchrow(connection, "get_session", token_hash=token_hash)

    async def delete_session(self, token_hash: bytes) -> None:
        async with database.transaction(self.pool) as connection:
            await _execute(connection, "delete_session", token_hash=token_hash)

    async def login_failures(self, user_name: str, remote: str, window: float) -> tuple[int, int]:
        """Recent failed logins (for this user name, from this address)."""
        async with self.pool.acquire() as connection:
            row = await _fetchrow(
                connection,
                "count_login_failures",
                user_name=user_name,
                remote=remote,
                window=window,
            )
        return (int(row["by_user"]), int(row["by_remote"])) if row else (0, 0)

    async def record_login(self, user_name: str, remote: str, *, ok: bool) -> None:
        async with database.transaction(self.pool) as connection:
            if ok:
                await _execute(connection, "clear_login_failures", user_name=user_name)
            else:
                await _execute(connection, "prune_login_failures")
                await _execute(
                    connection, "insert_login_failure", user_name=user_name, remote=remote
                )

    async def audit_page(self, **filters: Any) -> list[Record]:
        return await self._read("page_audit", **filters)

    async def _read(self, name: str, **params: Any) -> list[Record]:
        async with self.pool.acquire() as connection:
            return await _fetch(connection, name, **params)


class ReconcileSession:
    """What a reconcile run writes, on the connection that holds the reconcile lock."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def last_success(self) -> Record | None:
        return await _fetchrow(self._connection, "reconcile_last_success")

    async def start(self, since: datetime, until: datetime, *, dry_run: bool) -> int:
        run_id: int = await _fetchval(
            self._connection, "reconcile_start", since=since, until=until, dry_run=dry_run
        )
        return run_id

    async def finish(
        self,
        run_id: int,
        status: str,
        *,
        livemode: bool | None,
        counts: dict[str, Any],
        error: str | None = None,
    ) -> None:
        await _execute(
            self._connection,
            "reconcile_finish",
            run_id=run_id,
            status=status,
            livemode=livemode,
            counts=orjson.dumps(counts).decode(),
            error=error,
        )

    async def known(self, ids: Sequence[str]) -> dict[str, str]:
        """For each id the archive or an earlier backfill knows: 'archived' or 'backfilled'."""
        rows = await _fetch(self._connection, "reconcile_known_events", ids=list(ids))
        return {r["event_id"]: "archived" if r["archived"] else "backfilled" for r in rows}

    async def record_backfills(self, run_id: int, rows: Sequence[object]) -> None:
        if rows:
            await _execute(
                self._connection,
                "reconcile_record_backfills",
                run_id=run_id,
                **columns(rows, BACKFILL_COLUMNS),
            )


class OutboxClaim:
    def __init__(self, connection: Connection, rows: list[Record]) -> None:
        self._connection = connection
        self.rows = rows

    async def mark_sent(self, ids: Sequence[int]) -> None:
        await _execute(self._connection, "mark_outbox_sent", ids=list(ids))

    async def backlog(self) -> int:
        row = await _fetchrow(self._connection, "outbox_backlog")
        return int(row[0]) if row else 0


class _Claim:
    """Rows locked in one transaction; the action's audit entry commits with its changes."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def audit(self, actor: str, action: str, count: int, details: dict[str, Any]) -> int:
        """Record the action in the same transaction as its changes; the entry's id."""
        row = await _record_audit(self._connection, actor, action, count, details)
        return int(row["id"])


class InvalidClaim(_Claim):
    def __init__(self, connection: Connection, rows: list[Record]) -> None:
        super().__init__(connection)
        self.rows = rows

    async def purge(self, ids: Sequence[str], note: str) -> None:
        """These `invalid` events become purge tombstones (bodies kept), `note` saying why."""
        await _execute(self._connection, "purge_invalid_events", ids=list(ids), note=note)


class DeadLetterClaim(_Claim):
    def __init__(self, connection: Connection, rows: list[Record]) -> None:
        super().__init__(connection)
        self.rows = rows

    async def settle(self, row_id: int, status: str, actor: str, reason: str | None) -> None:
        await _execute(
            self._connection,
            "settle_dead_letter",
            id=row_id,
            status=status,
            actor=actor,
            reason=reason,
        )

    async def tombstone(self, row: ArchiveRow, note: str) -> None:
        """Leave the purged event in the archive (outcome `purged`), so a resend is not applied."""
        values = {name: value[0] for name, value in _archive_columns([row]).items()}
        del values["outcome"]
        await _execute(self._connection, "archive_tombstone", **values, note=note)


# -- statements ---------------------------------------------------------------------------------


async def _fetch(connection: Connection, name: str, **params: Any) -> list[Record]:
    query = QUERIES[name]
    return await connection.fetch(query.sql, *query.args(params))


async def _fetchrow(connection: Connection, name: str, **params: Any) -> Record | None:
    query = QUERIES[name]
    return await connection.fetchrow(query.sql, *query.args(params))


async def _fetchval(connection: Connection, name: str, **params: Any) -> Any:
    query = QUERIES[name]
    return await connection.fetchval(query.sql, *query.args(params))


async def _execute(connection: Connection, name: str, **params: Any) -> None:
    query = QUERIES[name]
    await connection.execute(query.sql, *query.args(params))


async def _apply_batch(
    connection: Connection,
    items: Sequence[Incoming],
    *,
    replay: bool,
    modes: Collection[bool],
) -> Plan:
    """Plan and write a batch (in the caller's transaction)."""
    booked = await _load(connection, items, replay=replay)
    plan = plan_batch(items, booked, modes)
    await _write_orders(connection, plan)
    await _write_postings(connection, list(plan.postings.values()))
    await _write_chargebacks(connection, plan)
    await _write_archive(connection, plan.archive)
    await _write_outbox(connection, plan)
    return plan


def _report(plan: Plan) -> None:
    """What a committed plan found worth a metric and a warning."""
    for event in plan.contradictions:
        metrics.CONTRADICTIONS.inc()
        log.warning(
            "contradiction: an unpaid order's ending met a payment",
            event_id=event.event_id,
            event_type=event.type,
            order_id=event.order_id,
        )


async def _record_audit(
    connection: Connection, actor: str, action: str, count: int, details: dict[str, Any]
) -> Record:
    row = await _fetchrow(
        connection,
        "record_audit",
        actor=actor,
        action=action,
        count=count,
        details=orjson.dumps(details, default=str).decode(),
    )
    assert row is not None
    return row


async def _load(connection: Connection, items: Sequence[Incoming], *, replay: bool) -> Booked:
    """Lock the batch's orders and read what the plan needs; charges are resolved first, so the
    orders of chargebacks (which name only a charge) are locked too."""
    events = [item.event for item in items]
    # Charges named by charge events, and refunded ones (a refund goes back to the customer the
    # payment was booked for); plain payments need no lookup.
    charge_ids = sorted(
        {e.charge_id for e in events if e.charge_id}
        | {c.id for e in events for c in e.paid_charges if c.refunds}
    )
    charges = {}
    for row in await _fetch(connection, "booked_charges", charge_ids=charge_ids):
        charges[(row["livemode"], row["charge_id"])] = ledger.Charge(
            row["charge_id"],
            row["order_id"],
            row["amount"],
            row["currency"],
            row["livemode"],
            row["customer_key"],
            row["refunded"],
        )
    order_ids = sorted(
        {e.order_id for e in events if e.order_id} | {c.order_id for c in charges.values()}
    )
    orders = await _fetch(connection, "lock_orders", ids=order_ids)
    archived: list[str] = []
    if not replay:
        rows = await _fetch(connection, "archived_event_ids", ids=[e.event_id for e in events])
        archived = [row["event_id"] for row in rows]
    known = {r["id"] for r in orders}
    candidates = _candidate_keys(
        [i for i in items if i.event.order_id in known or i.event.chargeback]
    )
    keys = await _fetch(connection, "booked_keys", keys=sorted(candidates))
    chargeback_ids = sorted({e.chargeback.id for e in events if e.chargeback})
    chargebacks = await _fetch(connection, "chargeback_states", ids=chargeback_ids)
    return Booked(
        orders={r["id"]: _state(r) for r in orders},
        archived_ids=archived,
        keys={(r["livemode"], r["business_key"]) for r in keys},
        charges=charges,
        chargebacks={r["id"]: _state(r) for r in chargebacks},
        order_views={
            r["id"]: OrderView(
                r["id"], r["status"], r["amount"], r["currency"], r["customer_key"], r["livemode"]
            )
            for r in orders
        },
    )


def _state(row: Record) -> OrderState:
    return OrderState(row["status"], row["last_event_id"], row["last_event_created_at"])


def _candidate_keys(items: Sequence[Incoming]) -> set[str]:
    """Every business key these events could post (payments, refunds, chargeback steps); the
    caller leaves out events of orders not in the database yet: nothing of theirs is posted."""
    keys: set[str] = set()
    for item in items:
        event = item.event
        if event.chargeback is not None:
            keys |= {ledger.chargeback_key(event.chargeback.id, s) for s in ledger.CHARGEBACK_STEPS}
            continue
        order_id = event.order_id or ""
        for charge in event.paid_charges:
            keys.add(ledger.business_key(ledger.PAYMENT, order_id, charge.id))
            keys |= {ledger.business_key(ledger.REFUND, order_id, r.id) for r in charge.refunds}
    return keys


async def _write_orders(connection: Connection, plan: Plan) -> None:
    if plan.new_orders:
        rows = list(plan.new_orders.values())
        inserted = await _fetch(connection, "insert_orders", **columns(rows, ORDER_INSERT_COLUMNS))
        if len(inserted) != len(rows):
            raise ConcurrentOrderInsert("a new order was created concurrently")
    if plan.changed_orders:
        rows = list(plan.changed_orders.values())
        await _execute(connection, "update_orders", **columns(rows, ORDER_UPDATE_COLUMNS))


async def _write_postings(connection: Connection, postings: Sequence[Posting]) -> None:
    if not postings:
        return
    new = await _fetch(
        connection, "insert_ledger_transactions", **columns(postings, POSTING_COLUMNS)
    )
    by_key = {p.key: p for p in postings}
    entries: dict[str, list[Any]] = {
        "transaction_id": [],
        "account": [],
        "currency": [],
        "amount": [],
    }
    for row in new:
        posting = by_key[(row["livemode"], row["business_key"])]
        for entry in posting.entries:
            entries["transaction_id"].append(row["id"])
            entries["account"].append(entry.account)
            entries["currency"].append(posting.currency)
            entries["amount"].append(entry.amount)
    if entries["transaction_id"]:
        await _execute(connection, "insert_entries", **entries)


async def _write_chargebacks(connection: Connection, plan: Plan) -> None:
    if plan.chargebacks:
        rows = list(plan.chargebacks.values())
        await _execute(connection, "upsert_chargebacks", **columns(rows, CHARGEBACK_COLUMNS))


async def _write_archive(connection: Connection, rows: Sequence[ArchiveRow]) -> None:
    # One row per id: an upsert may not touch the same row twice in one statement.
    unique: dict[str, ArchiveRow] = {}
    for row in rows:
        unique.setdefault(row.event_id, row)
    if unique:
        await _execute(connection, "archive_events", **_archive_columns(list(unique.values())))


def _archive_columns(rows: Sequence[ArchiveRow]) -> dict[str, list[Any]]:
    """The archive rows column by column; the request as JSON text (a jsonb parameter)."""
    values = columns(rows, ARCHIVE_COLUMNS)
    values["request"] = [
        orjson.dumps(request).decode() if request is not None else None
        for request in values["request"]
    ]
    return values


async def _write_outbox(connection: Connection, plan: Plan) -> None:
    if plan.messages:
        await _execute(connection, "insert_outbox", **columns(plan.messages, OUTBOX_COLUMNS))
