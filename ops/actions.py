"""What the on-call actions on many rows share (dead letters and invalid events): which rows
(a Selection), what an action took or would take (an ActionResult, bounded however many rows it
took), its progress, and its entry in the audit trail."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import BadRequest
from ops import audit

KEPT, KEPT_IDS = 500, 1000  # rows and keys a result lists (its counts cover all)

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class Selection:
    """Which rows: these ids, every one, or all matching every filter given (each kind of row
    allows its own filters: see `check`)."""

    ids: tuple[str, ...] = ()
    everything: bool = False
    event_type: str | None = None
    kind: str | None = None  # a dead letter's failure kind
    order_id: str | None = None
    since: datetime | None = None  # Conekta's created_at >= since
    until: datetime | None = None  # Conekta's created_at < until

    @classmethod
    def window(
        cls, since: datetime | None, until: datetime | None, event_type: str | None = None
    ) -> Selection:
        """The filters given, or every one without any (`events replay --outcome invalid`)."""
        return cls(
            event_type=event_type,
            since=since,
            until=until,
            everything=not any((event_type, since, until)),
        )

    def filters(self) -> dict[str, Any]:
        """The filters given, by the names people use (type, kind, order, since, until)."""
        named = {
            "type": self.event_type,
            "kind": self.kind,
            "order": self.order_id,
            "since": self.since,
            "until": self.until,
        }
        return {name: value for name, value in named.items() if value is not None}

    def check(self, allowed: Collection[str]) -> None:
        """Exactly one of ids, all, or filters, and only the filters `allowed` here."""
        given = self.filters()
        if set(given) - set(allowed):
            raise BadRequest(f"only these filters select here: {', '.join(allowed)}")
        if sum((bool(self.ids), self.everything, bool(given))) != 1:
            raise BadRequest(f"say which: ids, all, or filters ({', '.join(allowed)})")

    def describe(self, what: str) -> str:
        """For the audit trail's `target`: what was asked for, in a line."""
        return audit.target(what, self.ids, self.everything, self.filters())

    def not_found(self, found: Collection[str]) -> list[str]:
        """Ids asked for that the action did not find (none when it names no ids)."""
        return sorted(set(self.ids) - set(found))


@dataclass
class ActionResult:
    """What an action took (or would take). A backlog can hold a million rows (a schema change,
    hours of traffic): the counts and totals cover every one, the lists only the first KEPT rows
    and KEPT_IDS keys, so neither memory nor a response grows with it."""

    action: str  # replay | purge
    dry_run: bool
    matched: list[dict[str, Any]] = field(default_factory=list)
    totals: Counter[str] = field(default_factory=Counter)  # per verdict (dry run) or outcome
    done: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    audit_id: int | None = None
    matched_count: int = 0
    done_count: int = 0

    def add_matched(self, row: dict[str, Any]) -> None:
        self.matched_count += 1
        if len(self.matched) < KEPT:
            self.matched.append(row)

    def add_done(self, ids: Sequence[str]) -> None:
        self.done_count += len(ids)
        self.done += ids[: max(0, KEPT_IDS - len(self.done))]

    def summary(self) -> dict[str, Any]:
        return {**self.__dict__, "totals": dict(self.totals)}


def audit_details(
    what: str, selection: Selection, result: ActionResult, reason: str
) -> dict[str, Any]:
    """An action's details in the audit trail: what was asked for, why, and what it did."""
    return {
        "target": selection.describe(what),
        "reason": reason,
        "selection": {
            "ids": list(selection.ids[:KEPT_IDS]),
            **{
                k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in selection.filters().items()
            },
            "all": selection.everything,
        },
        "outcomes": dict(result.totals),
        "ids": result.done,  # the first KEPT_IDS
    }
