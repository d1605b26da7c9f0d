"""Power before running: the smallest effect a row can detect, and how many replicates it needs.

For an estimate whose variance is `replicate_var / n + fixed_var` (`evidence.intervals.Estimate`:
seeds or timing rounds as replicates, plus the image part that more seeds do not shrink), a
two-sided test at level 1 - LEVEL detects an effect d with probability `power` when

    d >= (t_{1 - alpha/2, df} + t_{power, df}) * se,   se = sqrt(replicate_var / n + fixed_var)

with the replicates' n - 1 df, as the interval has (`evidence.intervals`; the usual
normal-approximation formula with t quantiles in place of z).
The variances are this row's own measured ones, used as the pilot for the next run: they say how
many seeds (or rounds) would make the row decidable, not whether this run's verdict holds.
"""
from __future__ import annotations

import math

from ..core.errors import not_a_command
from .intervals import LEVEL, Estimate

__all__ = ["detectable_effect", "replicates_needed", "POWER", "MAX_REPLICATES"]

POWER = 0.80
MAX_REPLICATES = 1000


def detectable_effect(est: Estimate, replicates: int | None = None, *, power: float = POWER,
                      level: float = LEVEL) -> float:
    """Smallest effect (on the estimate's test scale: log for ratios) detected with `power` at
    `replicates` replicates (default: as measured). NaN where the estimate has no variance model."""
    from scipy.stats import t

    if est.se == math.inf:                     # one seed: its variance is unknown
        return math.inf
    if not (math.isfinite(est.se) and est.se > 0):
        return math.nan                        # exact, or a percentile interval: no variance model
    n = replicates or est.replicates
    seeded = math.isfinite(est.replicate_var)
    v1 = est.replicate_var / n if seeded else 0.0
    df = n - 1 if seeded else math.inf
    return float((t.ppf(1 - (1 - level) / 2, df) + t.ppf(power, df)) * math.sqrt(v1 + est.fixed_var))


def replicates_needed(est: Estimate, target: float, *, power: float = POWER, level: float = LEVEL) -> float:
    """Fewest replicates (seeds, rounds) whose detectable effect is at most `target`; NaN when no target,
    inf when even `MAX_REPLICATES` would not do (the image part alone is too wide: more images needed)."""
    if not math.isfinite(target) or not math.isfinite(est.replicate_var):
        return math.nan
    for n in range(2, MAX_REPLICATES + 1):
        if detectable_effect(est, n, power=power, level=level) <= target:
            return n
    return math.inf


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
