"""Where settlement stands, for the console (the Settlement page and GET /api/v1/settlement):
each transfer with its status, what a dry-run `settle match` would post and the records it leaves
unmatched or for review, `settle verify`'s four invariants, and the last balance snapshot. One
read, two renderings; it posts nothing (posting stays with the on-call CLI, `settle match
--apply`)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from domain import payouts
from domain import settlement as rules
from ops import settlement
from store import Store

INVARIANTS = {
    1: "per currency, at the last balance snapshot in the API key's mode: the ledger's"
    " conekta:receivable + conekta:disputed = Conekta's available + pending + retained",
    2: "every payment, refund and chargeback older than 3 days has its Conekta transaction,"
    " and every Conekta transaction its posting or an adjustment",
    3: "no transfer whose bank date an imported statement covers stays in conekta:in_transit"
    " longer than 3 business days",
    4: "transfers and the bank lines that carry their statement_reference match one to one,"
    " amounts exact",
}
FOR_REVIEW = (rules.UNMATCHED, rules.REVIEW)  # listed whether or not anything is left to post


async def status(
    store: Store, *, now: datetime, tax_rate: Decimal, tz: ZoneInfo, livemode: bool
) -> dict[str, Any]:
    planned = (await settlement.match(store, apply=False, tax_rate=tax_rate, tz=tz)).match
    found = await settlement.records(store)
    verified = await settlement.verify(store, now=now, tax_rate=tax_rate, tz=tz, livemode=livemode)
    bank_dates = {line.id: line.date for line in found.lines}
    sent = {(t.livemode, t.id): t for t in found.transfers}
    today = now.astimezone(tz).date()
    transfers = [
        _transfer(planned, item, sent.get((item.livemode, item.id)), bank_dates, today, tz)
        for item in planned.items
        if item.source == "transfer"
    ]
    items = [
        {**settlement.item_view(i), "age_days": (now - i.at).days, "to_post": _to_post(planned, i)}
        for i in planned.items
        if i.source != "transfer" and (i.state in FOR_REVIEW or _to_post(planned, i))
    ]
    return {
        "mode": "live" if livemode else "test",
        "time_zone": tz.key,
        "transfers": sorted(transfers, key=lambda t: t["created_at"], reverse=True),
        "to_post": [settlement.posting_view(p) for p in planned.postings.values()],
        "items": sorted(items, key=lambda i: i["at"]),
        "invariants": _invariants(verified),
        "balances": verified.balances,
    }


def _transfer(
    planned: rules.Match,
    item: rules.Item,
    transfer: payouts.Transfer | None,  # read after the match: always there (stored for good)
    bank_dates: dict[int, date],
    today: date,
    tz: ZoneInfo,
) -> dict[str, Any]:
    """sent: Conekta sent it, the ledger does not hold it yet; in_transit: the ledger holds it
    sent, no bank line shows it; landed (on its bank date); reversed: came back."""
    line_id = planned.landed.get((item.livemode, item.id))
    to_post = _to_post(planned, item)
    if item.state == rules.REVERSED:
        state = "reversed"
    elif line_id is not None:
        state = "landed"
    elif f"payout:{item.id}:sent" in to_post:
        state = "sent"
    else:
        state = "in_transit"
    sent_on = item.at.astimezone(tz).date()
    waiting = state in ("sent", "in_transit")
    return {
        "transfer": item.id,
        "livemode": item.livemode,
        "currency": item.currency,
        "amount": item.amount,
        "created_at": item.at.astimezone(tz).isoformat(),
        "statement_reference": transfer.statement_reference if transfer else None,
        "conekta_status": transfer.status if transfer else None,
        "status": state,
        "bank_date": bank_dates[line_id].isoformat() if line_id in bank_dates else None,
        "business_days": payouts.business_days_between(sent_on, today) if waiting else None,
        "to_post": to_post,
    }


def _to_post(planned: rules.Match, item: rules.Item) -> list[str]:
    """The keys explaining `item` that a `settle match --apply` would post now."""
    return [k for k in item.keys if (item.livemode, k) in planned.postings]


def _invariants(verified: settlement.VerifyResult) -> dict[str, Any]:
    return {
        "ok": verified.ok,
        "checks": [
            {
                "invariant": number,
                "rule": rule,
                "ok": not any(b.invariant == number for b in verified.broken),
                "broken": [b.what for b in verified.broken if b.invariant == number],
            }
            for number, rule in INVARIANTS.items()
        ],
    }
