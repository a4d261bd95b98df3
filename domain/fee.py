"""Conekta's fee on a charge, split into commission and the IVA on it; pure.

Conekta's `fee` is commission plus tax (16 % IVA in Mexico: the seed's 1255 on 23000 is
(3.4 % x 23000 + 300) x 1.16). A Mexican merchant books the IVA apart (an asset it can credit),
so with a tax rate r every fee posting of F splits into

    conekta:fees        commission = round-half-up(F / (1 + r))
    tax:vat_on_fees     F - commission

r = 0 books all of F as conekta:fees (no split).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DEFAULT_TAX_RATE = Decimal("0.16")


def commission(fee: int, tax_rate: Decimal) -> int:
    """The commission inside a fee of `fee` cents (signed: a negative fee splits the same way)."""
    if tax_rate == 0:
        return fee
    whole = (abs(Decimal(fee)) / (1 + tax_rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(whole) if fee >= 0 else -int(whole)


def split(fee: int, tax_rate: Decimal) -> tuple[int, int]:
    """(commission, tax) of a fee; they add up to it exactly."""
    part = commission(fee, tax_rate)
    return part, fee - part
