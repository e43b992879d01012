"""A token bucket for definition writes, charged by formula size.

Every worker validates, compiles and backfills each definition it applies on
its event loop, for each partition it holds; that work grows with the
formula. Counting writes would either let a flood of maximal formulas
through or hold back a CLI applying a hundred small segments. So a write
costs its formula's length (at least ``MIN_COST``), and the bucket refills
at ``chars_per_second``: by default two maximal (8,192-character) formulas
a second, or sixty-four typical ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MIN_COST", "WriteBudget"]

MIN_COST = 256  # what a write of a small (or no) formula costs


class WriteBudget:
    def __init__(self, chars_per_second: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = chars_per_second
        self._clock = clock
        self._tokens = float(chars_per_second)
        self._at = clock()

    def cost(self, formula: str | None) -> int:
        return max(MIN_COST, len(formula or ""))

    def take(self, formula: str | None) -> float:
        """Charge a write; returns 0 when it may go, else the seconds after
        which it could (nothing is charged then)."""
        now = self._clock()
        self._tokens = min(float(self.rate), self._tokens + (now - self._at) * self.rate)
        self._at = now
        cost = min(self.cost(formula), self.rate)  # a maximal write always fits a full bucket
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        return (cost - self._tokens) / self.rate
