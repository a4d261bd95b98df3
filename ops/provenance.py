"""`ledger verify --provenance`: every posting's provenance checked again, not believed.

Each posting names the event that posted it; that event's archived body must back the posting:
- `signed` (and postings older than provenance): the body's DIGEST verifies now with Conekta's
  keys (receiving and verify-only), and the body could post that business key;
- `api`: the archived event is Conekta's API record (provenance `api`) and could post that key;
- `attested:<user>`: an operator's word; listed until a signed event or an API record of the same
  order, verified now, could post the same key (`confirmed`);
- `settlement`: posted by `settle match` from a Conekta transaction or transfer `settle pull`
  stored (`api`) or an imported bank line (`statement`): counted; `settle verify` checks them.
A posting none of these back is listed `unbacked` (exit 1). One whose event's month was pruned
cannot be checked here (`unchecked`: restore that month's signed export to check it).
Costs one RSA verification per posting (~30-60 µs) and the archive reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.errors import ConektaIngestError
from core.verifier import Verifier
from domain import ledger
from domain.order_event import parse_order_event
from domain.provenance import API, SIGNED, is_attested
from store import Store

PAGE = 1000
LISTED = 100  # postings named per category in the report


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    listed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, category: str, row: Mapping[str, Any], why: str) -> None:
        self.counts[category] += 1
        if category in ("signed", "api", "confirmed", "settlement"):
            return
        shown = self.listed.setdefault(category, [])
        if len(shown) < LISTED:
            keys = ("id", "business_key", "order_id", "event_id", "provenance")
            shown.append({**{k: row[k] for k in keys}, "why": why})

    @property
    def ok(self) -> bool:
        return not self.counts["unbacked"]

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": dict(self.counts), "listed": self.listed}


async def verify(store: Store, verifier: Verifier) -> Report:
    """Every posting, a page at a time, in the order they were recorded."""
    report, after = Report(), 0
    while rows := await store.ledger.provenance_page(after, PAGE):
        after = rows[-1]["id"]
        attested = [r for r in rows if is_attested(r["provenance"]) and r["archived"]]
        confirmers = await _confirmers(store, verifier, {r["order_id"] for r in attested})
        for record in rows:
            row = dict(record)
            category, why = _judge(row, verifier, confirmers)
            report.add(category, row, why)
    return report


def _judge(
    row: Mapping[str, Any], verifier: Verifier, confirmers: Mapping[str, set[str]]
) -> tuple[str, str]:
    """(category, why) of one posting with its archived event."""
    if row["settlement"]:  # `settle match`'s, from a stored record: `settle verify` checks it
        return "settlement", ""
    if not row["archived"]:
        return "unchecked", "its event's month was pruned"
    provenance = row["provenance"]
    if is_attested(provenance):
        if row["business_key"] in confirmers.get(row["order_id"], set()):
            return "confirmed", ""
        return "attested", f"{provenance}: no signed event or API record confirms it yet"
    if row["event_provenance"] == API and provenance in (API, None):
        kind, ok = API, True
    elif provenance in (SIGNED, None):
        reason = verifier.reason(bytes(row["body"]), _json(row["request"]))
        kind, ok = SIGNED, reason is None
        if not ok:
            return "unbacked", f"event {row['event_id']}: {reason}"
    else:
        return "unbacked", f"provenance {provenance!r} but the event is not Conekta's record"
    if not ok or not _could_post(bytes(row["body"]), row["business_key"], row["order_id"]):
        return "unbacked", f"event {row['event_id']} does not post {row['business_key']}"
    return kind, ""


async def _confirmers(store: Store, verifier: Verifier, order_ids: set[str]) -> dict[str, set[str]]:
    """Per order, the business keys its verified events (signed now, or API records) could post."""
    keys: dict[str, set[str]] = {}
    if not order_ids:
        return keys
    for event in await store.ledger.confirming_events(sorted(order_ids)):
        body = bytes(event["body"])
        verified = event["provenance"] == API or (
            not is_attested(event["provenance"])
            and verifier.reason(body, _json(event["request"])) is None
        )
        if verified:
            keys.setdefault(event["order_id"], set()).update(_keys(body, event["order_id"]))
    return keys


def _keys(body: bytes, order_id: str | None) -> set[str]:
    try:
        return ledger.candidate_keys(parse_order_event(body), order_id)
    except ConektaIngestError:  # not an order event (any more): it backs nothing
        return set()


def _could_post(body: bytes, key: str, order_id: str | None) -> bool:
    try:
        return ledger.could_post(parse_order_event(body), key, order_id)
    except ConektaIngestError:  # not an order event (any more): it backs nothing
        return False


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
