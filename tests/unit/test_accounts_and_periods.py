"""The chart of accounts (domain/accounts.py) and the ledger's calendar (domain/periods.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import BadRequest, UnknownAccount
from core.settings import load_settings
from domain import accounts, ledger, periods
from domain.accounts import AccountType

MX = ZoneInfo("America/Mexico_City")


@pytest.mark.parametrize(
    ("name", "kind", "side"),
    [
        ("conekta:receivable", AccountType.ASSET, "debit"),
        ("conekta:disputed", AccountType.ASSET, "debit"),
        ("conekta:in_transit", AccountType.ASSET, "debit"),
        ("tax:vat_on_fees", AccountType.ASSET, "debit"),
        ("bank:bbva", AccountType.ASSET, "debit"),
        ("conekta:fees", AccountType.EXPENSE, "debit"),
        ("conekta:dispute_fees", AccountType.EXPENSE, "debit"),
        ("conekta:adjustments", AccountType.EXPENSE, "debit"),
        ("customer:cus_2tYzH", AccountType.REVENUE, "credit"),
        ("customer:ana@example.com", AccountType.REVENUE, "credit"),
    ],
)
def test_every_account_the_ledger_writes_is_declared(name: str, kind: str, side: str) -> None:
    account = accounts.declare(name)
    assert (account.type, account.normal_side) == (kind, side)


@pytest.mark.parametrize("name", ["conekta:other", "customer:", "bank:", "receivable", ""])
def test_an_account_the_chart_does_not_know_is_refused_not_guessed(name: str) -> None:
    with pytest.raises(UnknownAccount, match="chart of accounts"):
        accounts.declare(name)


def test_the_postings_write_only_declared_accounts() -> None:
    names = {ledger.RECEIVABLE, ledger.FEES, ledger.DISPUTED, ledger.customer_account("cus_1")}
    assert all(accounts.declare(n).name == n for n in names)


def test_a_negative_receivable_reads_as_owed_to_conekta() -> None:
    assert accounts.reading("conekta:receivable", -500) == "owed to Conekta"
    assert accounts.reading("conekta:receivable", 500) == ""
    assert accounts.reading("customer:cus_1", -1) == "against its normal side (credit)"


def test_a_bare_date_is_the_start_of_that_day_in_the_ledger_zone() -> None:
    assert periods.parse_time("2026-03-01", MX) == datetime(2026, 3, 1, 6, tzinfo=UTC)
    assert periods.parse_time("2026-03-01T10:00", MX) == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert periods.parse_time("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)  # no zone: UTC


def test_an_instant_with_an_offset_or_unix_seconds_is_that_instant_in_any_zone() -> None:
    assert periods.parse_time("2026-03-01T00:00Z", MX) == datetime(2026, 3, 1, tzinfo=UTC)
    assert periods.parse_time("2026-03-01T00:00+01:00", MX) == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert periods.parse_time("1772323200", MX) == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "²", "1" * 30])
def test_a_time_that_is_not_one_is_a_clear_error(value: str) -> None:
    with pytest.raises(BadRequest, match="not a time"):
        periods.parse_time(value, MX)


@pytest.mark.parametrize("value", ["2026-3", "2026-13", "2026-00", "March", "2026-03-01"])
def test_a_month_is_yyyy_mm(value: str) -> None:
    with pytest.raises(BadRequest, match="not a month"):
        periods.parse_month(value)


def test_a_mexico_city_month_ends_at_six_in_the_morning_utc() -> None:
    march = periods.parse_month("2026-03")
    assert periods.month_start(march, MX) == datetime(2026, 3, 1, 6, tzinfo=UTC)
    assert periods.month_start(periods.next_month(march), MX) == datetime(2026, 4, 1, 6, tzinfo=UTC)
    assert periods.next_month(date(2026, 12, 1)) == date(2027, 1, 1)
    assert periods.month_of(datetime(2026, 4, 1, 5, 59, tzinfo=UTC), MX) == march


def test_a_month_closes_once_and_only_when_over() -> None:
    march, now = date(2026, 3, 1), datetime(2026, 4, 2, tzinfo=UTC)
    until = periods.closing(march, MX, now, None)
    assert until == datetime(2026, 4, 1, 6, tzinfo=UTC)
    with pytest.raises(BadRequest, match="closed already"):
        periods.closing(march, MX, now, until)
    with pytest.raises(BadRequest, match="closed already"):
        periods.closing(date(2026, 2, 1), MX, now, until)  # closing March closed February too
    with pytest.raises(BadRequest, match="not over yet"):
        periods.closing(date(2026, 4, 1), MX, now, until)
    assert periods.closing(date(2026, 4, 1), MX, datetime(2026, 5, 2, tzinfo=UTC), until) > until


def _posting(effective_at: datetime) -> ledger.Posting:
    entries = (ledger.Entry(ledger.RECEIVABLE, 100), ledger.Entry("customer:c", -100))
    return ledger.Posting(
        "payment:o:c", "payment", "o", "c", "MXN", True, "evt", effective_at, 100, entries
    )


def test_a_movement_of_a_closed_month_is_booked_on_the_first_open_instant() -> None:
    closed_before = datetime(2026, 4, 1, 6, tzinfo=UTC)
    late = _posting(datetime(2026, 3, 31, 23, tzinfo=UTC))
    booked = periods.book(late, closed_before)
    assert booked.effective_at == closed_before
    assert booked.occurred_at == late.effective_at
    assert booked.entries == late.entries
    on_time = _posting(closed_before)
    assert periods.book(on_time, closed_before) is on_time
    assert periods.book(late, None) is late


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_nothing_is_ever_booked_inside_a_closed_period(moved: datetime, closed: datetime) -> None:
    booked = periods.book(_posting(moved), closed)
    assert booked.effective_at >= closed
    assert (booked.occurred_at or booked.effective_at) == moved


def test_the_ledger_zone_is_a_setting_and_a_wrong_one_is_refused() -> None:
    assert load_settings({}).ledger_tz == MX
    assert load_settings({"CONEKTA_LEDGER_TZ": "UTC"}).ledger_tz == ZoneInfo("UTC")
    with pytest.raises(ValueError, match="CONEKTA_LEDGER_TZ: not a time zone"):
        load_settings({"CONEKTA_LEDGER_TZ": "Mars/Olympus"})
