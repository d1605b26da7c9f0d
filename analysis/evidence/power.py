"""Power before running: the smallest effect a row can detect, and how many replicates it needs.

For an estimate whose variance is `replicate_var / n + fixed_var` (`core.intervals.Estimate`:
seeds or timing rounds as replicates, plus the image part that more seeds do not shrink), and the
row's two-sided t-test at level 1 - LEVEL with the interval's n - 1 df, the detectable effect d is
the one the test finds with probability `power`: P(|T'| > t_{1 - alpha/2, df}) = power, T' a
noncentral t with df and noncentrality d / se (scipy's `nct`; at 3 seeds the normal formula
(t_{1-alpha/2} + t_power) * se overstates the power by ~15 points).

The variances are this row's own measured ones, used as the pilot for the next run: they say how
many seeds (or rounds) would make the row decidable, not whether this run's verdict holds.
"""
from __future__ import annotations

import math

from ..core.errors import not_a_command
from ..core.intervals import LEVEL, Estimate

__all__ = ["detectable_effect", "replicates_needed", "POWER", "MAX_REPLICATES"]

POWER = 0.80
MAX_REPLICATES = 1000


def detectable_effect(est: Estimate, replicates: int | None = None, *, power: float = POWER,
                      level: float = LEVEL) -> float:
    """Smallest effect (on the estimate's test scale: log for ratios) detected with `power` at
    `replicates` replicates (default: as measured). NaN where the estimate has no variance model."""
    from scipy.optimize import brentq
    from scipy.stats import nct, norm, t

    if est.se == math.inf:                     # one seed: its variance is unknown
        return math.inf
    if not (math.isfinite(est.se) and est.se > 0):
        return math.nan                        # exact, or a percentile interval: no variance model
    n = replicates or est.replicates
    seeded = math.isfinite(est.replicate_var)
    v1 = est.replicate_var / n if seeded else 0.0
    df = n - 1 if seeded else math.inf
    se = math.sqrt(v1 + est.fixed_var)
    if se == 0:
        return 0.0
    if math.isinf(df):
        return float((norm.ppf(1 - (1 - level) / 2) + norm.ppf(power)) * se)
    crit = t.ppf(1 - (1 - level) / 2, df)

    def shortfall(ncp: float) -> float:
        lower = nct.cdf(-crit, df, ncp)        # the wrong tail; scipy gives NaN where it is ~0
        return nct.sf(crit, df, ncp) + (0.0 if math.isnan(lower) else lower) - power

    high = crit + 5.0
    while shortfall(high) < 0:
        high *= 2
    return float(brentq(shortfall, 0.0, high) * se)


def replicates_needed(est: Estimate, target: float, *, power: float = POWER, level: float = LEVEL) -> float:
    """Fewest replicates (seeds, rounds) whose detectable effect is at most `target`; NaN when no target,
    inf when even `MAX_REPLICATES` would not do (the image part alone is too wide: more images needed)."""
    if not math.isfinite(target) or not math.isfinite(est.replicate_var):
        return math.nan
    def enough(n: int) -> bool:
        return detectable_effect(est, n, power=power, level=level) <= target

    if not enough(MAX_REPLICATES):
        return math.inf
    low, high = 1, MAX_REPLICATES             # the detectable effect shrinks with n: bisect
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
