"""The one backoff every retry loop uses: capped exponential delays with jitter.

Jitter spreads retries of many clients (or messages) over time, so they do not come back at once.
"""

from __future__ import annotations

import random


def jittered(delay: float, rng: random.Random | None = None) -> float:
    """Between half and all of `delay`."""
    return delay * (0.5 + 0.5 * (rng or random).random())


def delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before the n-th retry (1-based): base, 2x base, 4x base, ... up to cap."""
    exponent = min(max(attempt, 1) - 1, 32)
    return jittered(min(base * 2**exponent, cap), rng)
