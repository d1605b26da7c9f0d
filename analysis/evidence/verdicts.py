"""Verdict rules, fixed in code before the numbers are seen: a claim's rule and its 95% interval
decide, nothing else.

- `Direction(side)`: the paper says the effect lies on one side of `boundary` (+1 above, -1
  below). Interval entirely on the paper's side: reproduced; entirely on the other: contradicted.
- `Equivalence(margin)`: the paper says the effect is negligible, |effect - around| <= margin.
  Interval inside the band: reproduced; disjoint from it: contradicted.

Anything else is inconclusive, and so is every claim whose scale cannot test it (`decidable`
False, e.g. a 3x3 token grid where the claim is about localisation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.errors import not_a_command

__all__ = ["Direction", "Equivalence", "verdict", "VERDICTS"]

VERDICTS = ("reproduced", "contradicted", "inconclusive")


@dataclass(frozen=True)
class Direction:
    side: int            # +1: the paper's effect is above `boundary`; -1: below
    boundary: float = 0.0

    def __post_init__(self):
        if self.side not in (1, -1):
            raise ValueError("Direction.side is +1 or -1")

    def band(self, paper: float) -> str:
        return f"{'>' if self.side > 0 else '<'} {self.boundary:g}"

    def region(self, paper: float) -> tuple[float, float]:
        """The values on the paper's side."""
        return (self.boundary, math.inf) if self.side > 0 else (-math.inf, self.boundary)

    def decide(self, low: float, high: float, paper: float) -> str:
        lo, hi = (low, high) if self.side > 0 else (-high, -low)
        b = self.boundary * self.side
        return "reproduced" if lo > b else "contradicted" if hi < b else "inconclusive"


@dataclass(frozen=True)
class Equivalence:
    margin: float
    around: float = 0.0

    def band(self, paper: float) -> str:
        return f"within {self.around:g} ± {self.margin:g}"

    def region(self, paper: float) -> tuple[float, float]:
        return self.around - self.margin, self.around + self.margin

    def decide(self, low: float, high: float, paper: float) -> str:
        a, b = self.around - self.margin, self.around + self.margin
        return "reproduced" if a <= low and high <= b else "contradicted" if high < a or low > b else "inconclusive"


def verdict(rule, low: float, high: float, paper: float = math.nan, decidable: bool = True) -> str:
    """`reproduced`, `contradicted` or `inconclusive` for a 95% interval [low, high] under `rule`."""
    if not decidable or math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if low > high:
        raise ValueError(f"interval [{low}, {high}] is reversed")
    return rule.decide(low, high, paper)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
