"""A bank statement as CSV, read whole or not at all; pure.

The header is `date,amount,reference,description` (in that order; `description` may be empty);
`date` is YYYY-MM-DD, `amount` currency units with two decimals (`1234.56`, `-80.00`; positive
= money in). Every bad line is reported with its line number (the header is line 1), and a file
with any bad line imports nothing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date

from core.errors import BadRequest

HEADER = ("date", "amount", "reference", "description")
_AMOUNT = re.compile(r"^(-?)(\d+)\.(\d{2})$")


@dataclass(frozen=True)
class Line:
    line_number: int
    date: date
    amount: int  # cents
    currency: str
    reference: str
    description: str


class BadStatement(BadRequest):
    """A statement that cannot be imported: every problem, each with its line number."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("bad bank statement:\n  " + "\n  ".join(problems))


def cents(text: str) -> int:
    match = _AMOUNT.match(text.strip())
    if not match:
        raise ValueError(f"amount {text!r} is not units with two decimals (1234.56)")
    sign, units, hundredths = match.groups()
    value = int(units) * 100 + int(hundredths)
    return -value if sign else value


def parse(text: str, currency: str) -> list[Line]:
    """Every line of the statement, or BadStatement listing each bad one."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(c.strip().lower() for c in rows[0]) != HEADER:
        raise BadStatement([f"line 1: the header must be {','.join(HEADER)}"])
    lines, problems = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        try:
            lines.append(_line(number, row, currency))
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    if problems:
        raise BadStatement(problems)
    if not lines:
        raise BadStatement(["the statement has no lines"])
    return lines


def _line(number: int, row: list[str], currency: str) -> Line:
    if len(row) != len(HEADER):
        raise ValueError(f"{len(row)} fields, expected {len(HEADER)}")
    day, amount, reference, description = (cell.strip() for cell in row)
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"date {day!r} is not YYYY-MM-DD") from None
    if len(day) != 10:
        raise ValueError(f"date {day!r} is not YYYY-MM-DD")
    return Line(number, when, cents(amount), currency, reference, description)
