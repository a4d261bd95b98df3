"""The ledger's calendar: instants read in the ledger's time zone, months, and closed periods; pure.

Dates mean days and months in one zone (CONEKTA_LEDGER_TZ, default America/Mexico_City): a
Mexico City month ends at 06:00 UTC of the next day, not at UTC midnight. A bare date is the
first instant of that day there; a time without an offset is a wall-clock time there.

`ledger close --month M` closes M and every month before it: the books stay closed before one
instant, the first of the first open month. A movement that arrives later with an effective date
before it is booked on that instant, keeping its own date as `occurred_at`; so a balance as of
any instant of a closed month never changes once it is closed.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.errors import BadRequest
from domain.ledger import Posting

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_time(value: str, tz: ZoneInfo | None = None) -> datetime:
    """ISO 8601 or unix seconds, aware. With an offset (or Z) it is that instant; a bare date is
    the start of that day in `tz`, a time without an offset a wall-clock time there (UTC when no
    zone is given)."""
    where = tz or UTC
    try:
        if value.isascii() and value.isdigit():
            return datetime.fromtimestamp(int(value), UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # A time that cannot be written in UTC (0001-01-01T00:00+05:00) is refused here, not
        # by the database driver.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=where)).astimezone(UTC)
    except (ValueError, OverflowError, OSError):  # 10**20 s is past any year
        raise BadRequest(f"not a time: {value!r} (ISO 8601 or unix seconds)") from None


def parse_month(value: str) -> date:
    """YYYY-MM as the first day of that month."""
    match = _MONTH.match(value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise BadRequest(f"not a month: {value!r} (YYYY-MM)")
    return date(int(match.group(1)), int(match.group(2)), 1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_start(month: date, tz: ZoneInfo) -> datetime:
    """The first instant of a month in `tz`, in UTC."""
    return datetime.combine(month, time(0), tz).astimezone(UTC)


def month_of(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date().replace(day=1)


def closing(month: date, tz: ZoneInfo, now: datetime, closed_before: datetime | None) -> datetime:
    """The instant the books close before when `month` (and every month before it) is closed:
    the first instant of the next month in `tz`. A month not over yet cannot close, and one
    already closed does not close again."""
    until = month_start(next_month(month), tz)
    if until > now:
        raise BadRequest(f"{month:%Y-%m} is not over yet in {tz.key}: it cannot be closed")
    if closed_before is not None and until <= closed_before:
        raise BadRequest(
            f"{month:%Y-%m} is closed already (the books are closed before"
            f" {closed_before.astimezone(tz).isoformat()})"
        )
    return until


def book(posting: Posting, closed_before: datetime | None) -> Posting:
    """A posting as it is booked: effective on the first open instant when its own date falls in
    a closed period, keeping that date as occurred_at."""
    if closed_before is None or posting.effective_at >= closed_before:
        return posting
    return replace(posting, effective_at=closed_before, occurred_at=posting.effective_at)
