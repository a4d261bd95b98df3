"""`settle report --month M`: per transfer of the month, what it paid (domain/payout_report.py
says the rule), where it is (landed in the bank, or in transit), then the records nothing
explains yet with their age. Returns data; the CLI (and later the console) renders it."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from domain import payout_report, periods
from domain import settlement as rules
from domain.payouts import BankLine, Transfer
from ops import settlement
from store import Store


async def report(
    store: Store, month: date, *, tz: ZoneInfo, tax_rate: Decimal, now: datetime
) -> dict[str, Any]:
    start = periods.month_start(month, tz)
    end = periods.month_start(periods.next_month(month), tz)
    found = await settlement.records(store)
    planned = (await settlement.match(store, apply=False, tax_rate=tax_rate, tz=tz)).match
    where = {i.id: i for i in planned.items if i.source == "transfer"}
    lines = {line.id: line for line in found.lines}
    transfers = []
    for paid in payout_report.paid_by(found.transfers, found.txns, tax_rate):
        transfer = paid.transfer
        if not start <= transfer.created_at < end:
            continue
        item = where.get(transfer.id)
        landed_line = _landed_line(planned, transfer, lines)
        transfers.append(
            {
                "transfer": transfer.id,
                "livemode": transfer.livemode,
                "currency": transfer.currency,
                "created_at": transfer.created_at.astimezone(tz).isoformat(),
                "amount": transfer.amount,
                "statement_reference": transfer.statement_reference,
                **paid.sums,
                "difference": paid.difference,
                "transactions": list(paid.transactions),
                "status": _status(item),
                "bank_date": landed_line,
            }
        )
    unmatched = [
        {**settlement.item_view(i), "age_days": (now - i.at).days}
        for i in planned.items
        if i.state in (rules.UNMATCHED, rules.IN_FLIGHT, rules.REVIEW)
    ]
    return {
        "month": f"{month:%Y-%m}",
        "time_zone": tz.key,
        "rule": payout_report.RULE,
        "transfers": transfers,
        "unmatched": sorted(unmatched, key=lambda u: u["at"]),
    }


def _landed_line(
    planned: rules.Match, transfer: Transfer, lines: dict[int, BankLine]
) -> str | None:
    """The bank date of the line that shows the transfer (posted before, or by this run)."""
    line_id = planned.landed.get((transfer.livemode, transfer.id))
    return lines[line_id].date.isoformat() if line_id in lines else None


def _status(item: rules.Item | None) -> str:
    if item is not None and item.state in (rules.IN_FLIGHT, rules.REVERSED):
        return item.state
    return "landed"
