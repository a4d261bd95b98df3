"""The store: the only code that runs the project's SQL (store/queries/*.sql), by name.

`Store` is the one object callers hold: a pool and one attribute per room, each room one
concept's queries (`store.dead_letters.count()`). Numbered migrations live in store/migrations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

from core import database
from core.database import Pool
from domain.fee import DEFAULT_TAX_RATE
from store import sql
from store.apply import Apply
from store.audit import Audit
from store.dead_letters import DeadLetters
from store.events import Events
from store.in_flight import InFlight
from store.invalid import Invalid
from store.ledger import Ledger
from store.orders import Orders
from store.outbox import Outbox
from store.reconcile import Reconcile
from store.retention import Retention
from store.settlement import Settlement
from store.stats import Stats
from store.users import Users


class Store:
    """Named queries over a pool, one room per concept."""

    def __init__(self, pool: Pool, *, fee_tax_rate: Decimal = DEFAULT_TAX_RATE) -> None:
        """`fee_tax_rate`: CONEKTA_FEE_TAX_RATE, for the stores that apply events."""
        self.pool = pool
        self.apply = Apply(pool, fee_tax_rate)
        self.events = Events(pool)
        self.in_flight = InFlight(pool)
        self.invalid = Invalid(pool)
        self.orders = Orders(pool)
        self.ledger = Ledger(pool)
        self.outbox = Outbox(pool)
        self.dead_letters = DeadLetters(pool)
        self.reconcile = Reconcile(pool)
        self.retention = Retention(pool)
        self.stats = Stats(pool)
        self.audit = Audit(pool)
        self.users = Users(pool)
        self.settlement = Settlement(pool)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        max_size: int = 2,
        custom_plans: bool = False,
        fee_tax_rate: Decimal = DEFAULT_TAX_RATE,
    ) -> AsyncIterator[Store]:
        """A store on a small pool of its own (one-shot commands, the console)."""
        pool = await database.create_pool(url, max_size=max_size, custom_plans=custom_plans)
        try:
            yield cls(pool, fee_tax_rate=fee_tax_rate)
        finally:
            await pool.close()

    async def ping(self) -> None:
        async with self.pool.acquire() as connection:
            await sql.fetch(connection, "ping")
