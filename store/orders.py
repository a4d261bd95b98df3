"""Orders as the ledger knows them: their state, events, money, refunds, chargebacks, reconcile
flags and postings. An order is one id in one mode (Conekta's test and live modes may share an
id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.database import Record
from store import sql


class Orders(sql.Room):
    async def get(self, order_id: str, livemode: bool | None = None) -> Record | None:
        """The order of that mode; without one, the live order if there is one, else the test."""
        return await self._read_row("get_order", order_id=order_id, livemode=livemode)

    async def events(self, order_id: str, livemode: bool) -> list[Record]:
        return await self._read("order_events", order_id=order_id, livemode=livemode)

    async def money(self, order_id: str, livemode: bool) -> Record | None:
        return await self._read_row("order_money", order_id=order_id, livemode=livemode)

    async def chargebacks(self, order_id: str, livemode: bool) -> list[Record]:
        return await self._read("order_chargebacks", order_id=order_id, livemode=livemode)

    async def refunds(self, order_id: str, livemode: bool) -> list[Record]:
        """Every refund as Conekta last said (a pending one is not in the ledger yet)."""
        return await self._read("order_refunds", order_id=order_id, livemode=livemode)

    async def reconcile_flags(self, order_id: str, livemode: bool) -> list[Record]:
        return await self._read("order_reconcile_flags", order_id=order_id, livemode=livemode)

    async def postings(self, order_id: str, livemode: bool) -> list[Record]:
        return await self._read("order_postings", order_id=order_id, livemode=livemode)

    async def search(self, **filters: Any) -> list[Record]:
        return await self._read("search_orders", **filters)

    async def updated_since(self, since: datetime) -> list[str]:
        return [r["id"] for r in await self._read("orders_updated_since", since=since)]
