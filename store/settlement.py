"""Settlement's rows: Conekta's transactions, transfers and balance snapshots (`settle pull`),
bank statements (`bank import`), and the one transaction in which `settle match` reads what the
ledger holds and posts what domain/settlement.py says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from core import database
from core.database import Connection, Record
from domain import chargeback as chargeback_rules
from domain import ledger
from domain import settlement as rules
from domain.money_rows import ChargebackRow, ChargebackState
from store import sql
from store.apply import write_postings

SETTLE_LOCK = 0x736574746C65  # "settle": one match --apply at a time
PULL_LOCK = 0x73657470756C  # "setpul": one pull at a time
TRANSACTION_COLUMNS = (
    "id",
    "livemode",
    "type",
    "status",
    "amount",
    "fee",
    "net",
    "charge_id",
    "currency",
    "created_at",
    "raw",
)
TRANSFER_COLUMNS = (
    "id",
    "livemode",
    "amount",
    "currency",
    "status",
    "statement_reference",
    "created_at",
    "raw",
)
BANK_LINE_COLUMNS = ("line_number", "date", "amount", "currency", "reference", "description")


@dataclass(frozen=True)
class Statement:
    account: str
    file_sha256: str
    file_name: str
    first_date: date
    last_date: date
    lines: int
    imported_by: str


class Settlement(sql.Room):
    @asynccontextmanager
    async def pulling(self) -> AsyncIterator[bool]:
        """The pull lock on a connection of its own until the block ends; False when another
        pull holds it (several workers: one pulls, the others skip)."""
        async with self.pool.acquire() as connection:
            if not await sql.fetchval(connection, "settle_pull_try_lock", key=PULL_LOCK):
                yield False
                return
            try:
                yield True
            finally:
                await sql.fetchval(connection, "settle_pull_unlock", key=PULL_LOCK)

    async def save(self, kind: str, rows: Sequence[object]) -> int:
        """Transactions or transfers as fetched (objects with the table's columns, `raw` as
        JSON text); how many were new."""
        if not rows:
            return 0
        name, names = {
            "transactions": ("settle_upsert_transactions", TRANSACTION_COLUMNS),
            "transfers": ("settle_upsert_transfers", TRANSFER_COLUMNS),
        }[kind]
        async with database.transaction(self.pool) as connection:
            saved = await sql.fetch(connection, name, **sql.columns(rows, names))
        return sum(1 for r in saved if r["new"])

    async def save_balance(self, livemode: bool, raw: Mapping[str, Any]) -> Record:
        async with self.pool.acquire() as connection:
            row = await sql.fetchrow(
                connection, "settle_insert_balance", livemode=livemode, raw=_json(raw)
            )
        assert row is not None
        return row

    async def watermark(self, kind: str, livemode: bool) -> datetime | None:
        async with self.pool.acquire() as connection:
            seen: datetime | None = await sql.fetchval(
                connection, "settle_watermark", kind=kind, livemode=livemode
            )
        return seen

    async def advance_watermark(self, kind: str, livemode: bool, seen_to: datetime) -> None:
        async with self.pool.acquire() as connection:
            await sql.execute(
                connection,
                "settle_advance_watermark",
                kind=kind,
                livemode=livemode,
                seen_to=seen_to,
            )

    async def transactions(self, livemode: bool | None) -> list[Record]:
        return await self._read("settle_transactions", livemode=livemode)

    async def transfers(self, livemode: bool | None) -> list[Record]:
        return await self._read("settle_transfers", livemode=livemode)

    async def bank_lines(self) -> list[Record]:
        return await self._read("settle_bank_lines")

    async def statements(self) -> list[Record]:
        return await self._read("settle_statements")

    async def last_balances(self) -> list[Record]:
        return await self._read("settle_last_balances")

    async def held_at(self, livemode: bool, at: datetime) -> dict[str, int]:
        """Per currency: conekta:receivable + conekta:disputed as of `at`."""
        rows = await self._read("settle_held_at", livemode=livemode, at=at)
        return {r["currency"]: r["held"] for r in rows}

    async def ledger_without_transaction(self, livemode: bool, before: datetime) -> list[Record]:
        return await self._read(
            "settle_ledger_without_transaction", livemode=livemode, before=before
        )

    async def statement_by_hash(self, file_sha256: str) -> Record | None:
        return await self._read_row("bank_statement_by_hash", file_sha256=file_sha256)

    async def import_statement(self, statement: Statement, lines: Sequence[object]) -> int | None:
        """The statement and all its lines in one transaction; None when a file with the same
        hash was imported already."""
        async with database.transaction(self.pool) as connection:
            statement_id: int | None = await sql.fetchval(
                connection,
                "insert_bank_statement",
                account=statement.account,
                file_sha256=statement.file_sha256,
                file_name=statement.file_name,
                first_date=statement.first_date,
                last_date=statement.last_date,
                lines=statement.lines,
                imported_by=statement.imported_by,
            )
            if statement_id is None:
                return None
            await sql.execute(
                connection,
                "insert_bank_lines",
                statement_id=statement_id,
                **sql.columns(lines, BANK_LINE_COLUMNS),
            )
        return statement_id

    @asynccontextmanager
    async def matching(self, *, apply: bool) -> AsyncIterator[MatchSession]:
        """One transaction: with `apply`, holding the settle lock and (in `books`) the orders'
        locks, to write what the plan says; without, a read-only snapshot that locks nothing
        (a dry run, `settle verify`, the worker's hourly check never block a batch)."""
        async with database.transaction(self.pool) as connection:
            if apply:
                await sql.fetch(connection, "settle_lock", key=SETTLE_LOCK)
            else:
                await sql.execute(connection, "settle_snapshot")
            yield MatchSession(connection, locking=apply)


class MatchSession:
    def __init__(self, connection: Connection, *, locking: bool) -> None:
        self._connection = connection
        self._locking = locking

    async def books(
        self,
        charge_ids: Sequence[str],
        transfer_ids: Sequence[str],
        keys: Sequence[str],
        *,
        tax_rate: Decimal,
        tz: ZoneInfo,
    ) -> rules.Books:
        """What the ledger holds for these charges (their orders locked, as the apply path
        locks them: no batch moves their chargebacks meanwhile) and which keys are posted."""
        connection = self._connection
        charges = await sql.fetch(connection, "settle_charge_books", charge_ids=list(charge_ids))
        if self._locking:
            orders = sorted({(r["order_id"], r["livemode"]) for r in charges})
            await sql.fetch(
                connection,
                "lock_orders",
                ids=[o[0] for o in orders],
                livemodes=[o[1] for o in orders],
            )
            charges = await sql.fetch(
                connection, "settle_charge_books", charge_ids=list(charge_ids)
            )
        refunds = await sql.fetch(connection, "settle_refund_postings", charge_ids=list(charge_ids))
        states = await _chargebacks(connection, charge_ids)
        posted = await sql.fetch(connection, "booked_keys", keys=sorted(set(keys)))
        landed_keys = sorted({f"payout:{t}:landed" for t in transfer_ids})
        landed = await sql.fetch(connection, "settle_landed", keys=landed_keys)
        return rules.Books(
            charges={(r["livemode"], r["id"]): _book(r, refunds, states) for r in charges},
            posted={(r["livemode"], r["business_key"]) for r in posted},
            landed={(r["livemode"], r["transfer_id"]): r["line_id"] for r in landed},
            tax_rate=tax_rate,
            tz=tz,
        )

    async def write(self, match: rules.Match) -> None:
        assert self._locking, "a dry run writes nothing"
        connection = self._connection
        await write_postings(connection, list(match.postings.values()))
        if match.targets:
            await sql.execute(
                connection,
                "settle_set_targets",
                id=[t.chargeback_id for t in match.targets],
                livemode=[t.livemode for t in match.targets],
                amount=[t.amount for t in match.targets],
            )
        if match.fees:
            await sql.execute(
                connection,
                "settle_learn_fees",
                id=[f.charge_id for f in match.fees],
                livemode=[f.livemode for f in match.fees],
                fee=[f.fee for f in match.fees],
            )


def _book(
    row: Record,
    refunds: Sequence[Record],
    states: Mapping[tuple[bool, str], ChargebackState],
) -> rules.ChargeBook:
    charge = ledger.Charge(
        row["id"],
        row["order_id"],
        row["amount"],
        row["currency"],
        row["livemode"],
        row["customer_key"],
        row["fee"],
        row["paid_at"],
    )
    posted = tuple(
        rules.PostedRefund(r["business_key"], r["amount"], r["effective_at"], r["kind"] != "refund")
        for r in refunds
        if r["charge_id"] == row["id"] and r["livemode"] == row["livemode"]
    )
    return rules.ChargeBook(
        charge,
        row["payment"],
        row["fee_booked"],
        row["fee_key_posted"],
        posted,
        states.get((row["livemode"], row["id"])),
    )


async def _chargebacks(
    connection: Connection, charge_ids: Sequence[str]
) -> dict[tuple[bool, str], ChargebackState]:
    """The chargeback of each charge (the newest when Conekta opened several), with what its
    postings hold."""
    rows = await sql.fetch(connection, "chargeback_states", ids=[], charge_ids=list(charge_ids))
    money = await sql.fetch(connection, "chargeback_money", charge_ids=list(charge_ids))
    held = {(m["livemode"], m["id"]): m for m in money}
    states: dict[tuple[bool, str], ChargebackState] = {}
    for row in sorted(rows, key=lambda r: (r["opened_at"], r["id"])):
        found = held.get((row["livemode"], row["id"]))
        states[(row["livemode"], row["charge_id"])] = ChargebackState(
            ChargebackRow(**dict(row)),
            chargeback_rules.Held(found["withheld"], found["lost"])
            if found
            else chargeback_rules.Held(),
            frozenset(found["steps"]) if found else frozenset(),
            found["postings"] if found else 0,
        )
    return states


def _json(value: Mapping[str, Any]) -> str:
    return orjson.dumps(value).decode()
