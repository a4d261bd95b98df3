"""Conekta's fee on a charge, split into commission and the IVA on it; pure.

Conekta's `fee` is commission plus tax (16 % IVA in Mexico: the seed's 1255 on 23000 is
(3.4 % x 23000 + 300) x 1.16). A Mexican merchant books the IVA apart (an asset it can credit),
so with a tax rate r every fee posting of F splits into

    conekta:fees        commission = round-half-up(F / (1 + r))
    tax:vat_on_fees     F - commission

r = 0 books all of F as conekta:fees (no split).
"""

from __future__ import annotations

from decimal import Decimal

DEFAULT_TAX_RATE = Decimal("0.16")


def commission(fee: int, tax_rate: Decimal) -> int:
    """The commission inside a fee of `fee` cents (signed: a negative fee splits the same way).

    Exact integer arithmetic (every posted fee splits here: Decimal division and quantize
    cost ~4 us a fee): with r = p/q, |F| / (1 + r) = |F| q / (q + p), and rounding a/b half up
    is floor((2a + b) / 2b)."""
    if tax_rate == 0:
        return fee
    p, q = tax_rate.as_integer_ratio()
    whole = (2 * abs(fee) * q + q + p) // (2 * (q + p))
    return whole if fee >= 0 else -whole


def split(fee: int, tax_rate: Decimal) -> tuple[int, int]:
    """(commission, tax) of a fee; they add up to it exactly."""
    part = commission(fee, tax_rate)
    return part, fee - part
