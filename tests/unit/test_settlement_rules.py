"""Settlement's pure rules: the bank statement's CSV, one rule per Conekta transaction type, a
transfer and its bank line, and what a transfer paid."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.errors import BadRequest
from domain import bank_statement, payout_report, payouts
from domain import settlement as rules
from domain.ledger import Charge

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 10, 15, tzinfo=UTC)  # Tuesday, 09:00 in Mexico City


def txn(kind: str, amount: int, fee: int = 0, charge: str | None = None, **kw: object) -> rules.Txn:
    values: dict[str, object] = {
        "id": f"txn_{kind}",
        "livemode": True,
        "type": kind,
        "status": "available",
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "charge_id": charge,
        "currency": "MXN",
        "created_at": AT,
    }
    values.update(kw)
    return rules.Txn(**values)  # type: ignore[arg-type]


def book(fee_booked: int = 0, fee_key: bool = False) -> rules.Books:
    charge = Charge("ch_1", "ord_1", 23_000, "MXN", True, "cus", None, AT)
    return rules.Books(
        charges={(True, "ch_1"): rules.ChargeBook(charge, 23_000, fee_booked, fee_key)}
    )


def test_statement_lines_in_cents() -> None:
    lines = bank_statement.parse(
        "date,amount,reference,description\n2026-11-12,474.40,SPEI 4401234,Conekta\n"
        "2026-11-13,-80.00,FEE,\n",
        "MXN",
    )
    assert [(line.line_number, line.amount) for line in lines] == [(2, 47_440), (3, -8_000)]


def test_every_bad_line_is_named_with_its_number() -> None:
    with pytest.raises(BadRequest) as raised:
        bank_statement.parse(
            "date,amount,reference,description\n12/11/2026,1.00,a,b\n2026-11-12,1.5,a,b\n"
            "2026-11-12,1.00,a,b\n2026-11-13,2.00,a\n",
            "MXN",
        )
    assert raised.value.problems == [  # type: ignore[attr-defined]
        "line 2: date '12/11/2026' is not YYYY-MM-DD",
        "line 3: amount '1.5' is not units with two decimals (1234.56)",
        "line 5: 3 fields, expected 4",
    ]
    with pytest.raises(BadRequest, match="header"):
        bank_statement.parse("fecha,monto\n", "MXN")


def test_a_capture_trues_up_the_fee() -> None:
    unknown = rules.plan([txn("capture", 23_000, 1_255, "ch_1")], [], [], book())
    [posting] = unknown.postings.values()
    assert posting.business_key == "fee:ord_1:ch_1"
    assert {e.account: e.amount for e in posting.entries} == {
        "conekta:receivable": -1_255,
        "conekta:fees": 1_082,
        "tax:vat_on_fees": 173,
    }
    booked = rules.plan([txn("capture", 23_000, 1_255, "ch_1")], [], [], book(1_200, True))
    [adjust] = booked.postings.values()
    assert adjust.business_key == "fee_adjust:txn_capture" and adjust.amount == 55
    same = rules.plan([txn("capture", 23_000, 1_255, "ch_1")], [], [], book(1_255, True))
    assert not same.postings and same.items[0].state == rules.MATCHED


def test_unknown_types_go_to_adjustments_for_review_and_payouts_never_do() -> None:
    result = rules.plan(
        [txn("liquidation", -500), txn("brand_new_type", 7), txn("payout", -1_000)], [], [], book()
    )
    states = {i.type: (i.state, i.note) for i in result.items}
    assert states["liquidation"][0] == states["brand_new_type"][0] == rules.REVIEW
    assert "unknown type" in states["brand_new_type"][1]
    assert states["payout"] == (rules.UNMATCHED, "no transfer of that amount")
    assert {k for _, k in result.postings} == {
        "adjustment:txn_liquidation",
        "adjustment:txn_brand_new_type",
    }


def test_a_transfer_lands_on_the_line_with_its_reference_within_three_business_days() -> None:
    transfer = payouts.Transfer("tr_1", True, 47_440, "MXN", "paid", "4401234", AT)

    def line(
        n: int, day: date, amount: int = 47_440, ref: str = "SPEI 4401234"
    ) -> payouts.BankLine:
        return payouts.BankLine(n, "bbva", day, amount, "MXN", ref)

    lines = [
        line(1, date(2026, 11, 12), ref="SPEI 999"),
        line(2, date(2026, 11, 12), amount=47_441),
        line(3, date(2026, 11, 16)),  # Monday: past Friday
        line(4, date(2026, 11, 13)),
    ]
    result = rules.plan([], [transfer], lines, rules.Books())
    assert result.landed == {(True, "tr_1"): 4}
    assert {k for _, k in result.postings} == {"payout:tr_1:sent", "payout:tr_1:landed"}
    alone = rules.plan([], [transfer], lines[:3], rules.Books())
    assert alone.items[0].state == rules.IN_FLIGHT


def test_what_a_transfer_paid_sums_to_it() -> None:
    txns = [
        txn("capture", 23_000, 1_255, "ch_1", status="paid_out"),
        txn("refund", -5_000, id="txn_r", status="paid_out"),
        txn("rounding_adjustment", -1, id="txn_x", status="paid_out"),
        txn("capture", 9_000, 400, "ch_2", id="txn_pending", status="pending"),
    ]
    transfer = payouts.Transfer("tr_1", True, 16_744, "MXN", "paid", "1", AT)
    [paid] = payout_report.paid_by([transfer], txns, Decimal("0.16"))
    assert paid.sums == {
        "charges": 23_000,
        "refunds": -5_000,
        "chargebacks": 0,
        "fees": -1_082,
        "tax": -173,
        "adjustments": -1,
    }
    assert paid.difference == 0 and "txn_pending" not in paid.transactions


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (date(2026, 11, 10), date(2026, 11, 10), 0),  # sent today
        (date(2026, 11, 10), date(2026, 11, 9), 0),  # a clock behind: never negative
        (date(2026, 11, 10), date(2026, 11, 13), 3),  # Tuesday to Friday
        (date(2026, 11, 13), date(2026, 11, 16), 1),  # Friday to Monday: the weekend is not
        (date(2026, 11, 14), date(2026, 11, 15), 0),  # Saturday to Sunday
        (date(2026, 11, 10), date(2026, 12, 3), 17),
    ],
)
def test_business_days_between(start: date, end: date, days: int) -> None:
    assert payouts.business_days_between(start, end) == days
    if days:  # the inverse of business_days_after, on business days
        assert payouts.business_days_after(start, days) <= end
