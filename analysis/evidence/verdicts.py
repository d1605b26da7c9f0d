"""Verdict rules, registered before the numbers (`evidence/registry.toml`): a claim's rule, its
estimate, its power and its declared preconditions decide, nothing else.

- `Direction(side, boundary)`: the paper says the effect lies on one side of `boundary` (+1 above,
  -1 below). A test that puts it on the paper's side: reproduced; on the other: contradicted.
- `Equivalence(margin)`: the paper says the effect is negligible, |effect - around| <= margin.
  Two one-sided tests (TOST) inside the band: reproduced; a test that puts it outside: contradicted.

A stochastic estimate (finite standard error) is decided by a t-test at its degrees of freedom,
the same decision as its 95% interval (two-sided; TOST at 2.5% a side), at a Holm-adjusted
p-value when the scorecard corrects for multiplicity. An exact count or a percentile interval is
decided by its interval. What is left undecided is:

- `not testable`: a declared precondition failed (token grid, attention over too few tokens,
  model-quality floor): the scale cannot test the claim, whatever the numbers say;
- `underpowered`: the smallest effect the row can detect (80% power, `evidence.power`) exceeds
  the effect the rule must resolve (the paper's effect, or the rule's margin);
- `inconclusive`: the row could have decided and did not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.errors import UserError, not_a_command
from ..core.intervals import LEVEL, Estimate

__all__ = ["Direction", "Equivalence", "rule_from_spec", "verdict", "VERDICTS", "DECIDED"]

VERDICTS = ("reproduced", "contradicted", "inconclusive", "underpowered", "not testable")
DECIDED = ("reproduced", "contradicted")
ALPHA = 1 - LEVEL


def _t():
    from scipy.stats import t
    return t


@dataclass(frozen=True)
class Direction:
    side: int            # +1: the paper's effect is above `boundary`; -1: below
    boundary: float = 0.0
    log: bool = False    # a ratio: tested, and powered, on log scale

    def __post_init__(self):
        if self.side not in (1, -1):
            raise ValueError("Direction.side is +1 or -1")
        if self.log and self.boundary <= 0:
            raise ValueError("a log-scale Direction needs a positive boundary")

    def _scale(self, x: float) -> float:
        return math.log(x) if self.log else x

    def band(self, paper: float) -> str:
        return f"{'>' if self.side > 0 else '<'} {self.boundary:g}"

    def region(self, paper: float) -> tuple[float, float]:
        """The values on the paper's side."""
        return (self.boundary, math.inf) if self.side > 0 else (-math.inf, self.boundary)

    def decide(self, low: float, high: float, paper: float) -> str:
        lo, hi = (low, high) if self.side > 0 else (-high, -low)
        b = self.boundary * self.side
        return "reproduced" if lo > b else "contradicted" if hi < b else "inconclusive"

    def test(self, est: Estimate) -> tuple[float, str]:
        """(two-sided p-value against the boundary, the verdict it would support)."""
        stat = self.side * (self._scale(est.value) - self._scale(self.boundary)) / est.se
        p = 2 * _t().sf(abs(stat), est.df)
        return min(1.0, p), "reproduced" if stat > 0 else "contradicted"

    def target(self, paper: float) -> float:
        """The effect the row must resolve, on the test's scale: the paper's distance from the boundary;
        where the paper gives no number but the boundary is a tolerance (e.g. 'costs under 1 point'),
        the distance of no effect from it; else NaN (power cannot be judged)."""
        if math.isfinite(paper):
            d = self.side * (self._scale(paper) - self._scale(self.boundary))
            return d if d > 0 else math.nan
        null = 1.0 if self.log else 0.0
        d = self.side * (self._scale(null) - self._scale(self.boundary))
        return d if d > 0 else math.nan


@dataclass(frozen=True)
class Equivalence:
    margin: float
    around: float = 0.0
    log: bool = False

    def band(self, paper: float) -> str:
        return f"within {self.around:g} ± {self.margin:g}"

    def region(self, paper: float) -> tuple[float, float]:
        return self.around - self.margin, self.around + self.margin

    def decide(self, low: float, high: float, paper: float) -> str:
        a, b = self.around - self.margin, self.around + self.margin
        return "reproduced" if a <= low and high <= b else "contradicted" if high < a or low > b else "inconclusive"

    def test(self, est: Estimate) -> tuple[float, str]:
        """TOST inside the band (doubled, so that p < 0.05 is the 95% interval inside it), or the
        two-sided test of the nearer edge when the estimate lies outside the band."""
        t = _t()
        a, b = self.region(math.nan)
        below, above = (est.value - a) / est.se, (b - est.value) / est.se
        if below >= 0 and above >= 0:
            return min(1.0, 2 * max(t.sf(below, est.df), t.sf(above, est.df))), "reproduced"
        return min(1.0, 2 * t.sf(-min(below, above), est.df)), "contradicted"

    def target(self, paper: float) -> float:
        return self.margin


def rule_from_spec(spec: dict):
    """A rule from its registry entry, e.g. {type = "direction", side = 1, boundary = -1.0}."""
    spec = dict(spec)
    kind = spec.pop("type")
    if kind == "direction":
        return Direction(**spec)
    if kind == "equivalence":
        return Equivalence(**spec)
    raise UserError(f"unknown rule type {kind!r} (direction, equivalence)")


def verdict(rule, est: Estimate, paper: float = math.nan, testable: bool = True, p_value: float | None = None,
            detectable: float = math.nan) -> str:
    """The verdict of `rule` on `est`. `p_value`: the (multiplicity-adjusted) p-value of the rule's test,
    default the unadjusted one; `detectable`: the smallest detectable effect on the test's scale."""
    if not testable:
        return "not testable"
    if math.isnan(est.low) or math.isnan(est.high):
        return "inconclusive"
    if est.low > est.high:
        raise ValueError(f"interval [{est.low}, {est.high}] is reversed")
    if est.stochastic:
        p, supports = rule.test(est)
        decided = supports if (p if p_value is None else p_value) < ALPHA else "inconclusive"
    else:
        decided = rule.decide(est.low, est.high, paper)
    target = rule.target(paper)
    if decided == "inconclusive" and math.isfinite(target) and detectable > target:
        return "underpowered"
    return decided


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
