"""95% intervals for the scorecard, each with the sentence that says how it was computed.

- `seeded`: a trained-here statistic over training seeds and val images, with the seed as a
  random effect. The per-seed values give a seed-level variance (Student t, S - 1 degrees of
  freedom); a bootstrap over images (the same indices for every seed and every array, so paired
  comparisons keep their pairing) gives the variance of the seed-averaged statistic that comes from
  the images; the two are added and the degrees of freedom combined by Satterthwaite's formula.
  The image part is shared by all seeds (the same val images), so more seeds do not shrink it.
- `t_interval`: the mean of a few paired rounds (e.g. a difference measured once per round).
- `log_ratio_interval`: a speed ratio from interleaved timing rounds, t-interval on log ratios.
- `bootstrap`: percentile bootstrap over units (models of a table; the ranking sanity check).
- `proportion_difference`: two hit rates on n images each, normal approximation (unpaired).
- `exact`: a deterministic count (MACs, parameters): the interval is the value itself.

Why not a library for `seeded`: statsmodels' `MixedLM` fits a crossed seed x image model only
through a dense variance-component design (one column per image: thousands here) and gives no
small-sample degrees of freedom for the fixed effect; pingouin's `tost` takes raw samples, not a
two-level estimate. The two-level interval is a few lines on top of scipy's t distribution, and
its coverage is checked by simulation (`tests/evidence/test_intervals.py`).

Every `Estimate` also carries how its variance is made (`replicate_var` per replicate, over
`replicates` replicates, plus a `fixed_var` that more replicates do not shrink),
so `evidence.power` can say what effect it can detect and how many replicates a decision needs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np

from ..core.errors import not_a_command

__all__ = ["Estimate", "seeded", "random_effect", "cluster_indices", "bootstrap", "exact", "t_interval", "log_ratio_interval", "proportion_difference",
           "LEVEL"]

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A measured value with its 95% interval [low, high] and how the interval was obtained.

    `se` and `df` are those of `value` (of log(value) when `log`); NaN where the interval is not a
    t-interval (percentile bootstrap). `per_replicate`: the value per seed or per round."""

    value: float
    low: float
    high: float
    method: str
    se: float = math.nan
    df: float = math.nan
    log: bool = False
    replicate_unit: str = ""
    replicates: int = 0
    replicate_var: float = math.nan
    fixed_var: float = 0.0
    per_replicate: tuple = field(default=())

    def __post_init__(self):
        if not (self.low <= self.value <= self.high) and not math.isnan(self.value):
            raise ValueError(f"value {self.value} outside its interval [{self.low}, {self.high}]")

    def scaled(self, k: float) -> "Estimate":
        """The same estimate in units k times smaller (k > 0; e.g. 100 for fractions to points)."""
        if k <= 0 or self.log:
            raise ValueError("scaled: k must be positive and the estimate linear")
        return replace(self, value=k * self.value, low=k * self.low, high=k * self.high, se=k * self.se,
                       replicate_var=k * k * self.replicate_var, fixed_var=k * k * self.fixed_var,
                       per_replicate=tuple(k * v for v in self.per_replicate))

    @property
    def stochastic(self) -> bool:
        """Whether a test on it makes sense: it has a finite, positive standard error."""
        return math.isfinite(self.se) and self.se > 0


def _t_estimate(value: float, replicate_var: float, n: int, fixed_var: float, method: str,
                unit: str, per_replicate=(), log: bool = False) -> Estimate:
    from scipy.stats import t

    df = n - 1
    se = math.sqrt(replicate_var / n + fixed_var)
    half = t.ppf((1 + LEVEL) / 2, df) * se if se > 0 else 0.0
    return Estimate(value, value - half, value + half, method, se, df, log, unit, n, replicate_var, fixed_var,
                    tuple(float(v) for v in per_replicate))


def random_effect(per_seed: Sequence[float], fixed_var: float, method: str) -> Estimate:
    """Mean of `per_seed` values (seeds as a random effect, t with S - 1 df) with `fixed_var` (the variance
    of the seed mean from other sources: images, timing rounds) added to its squared standard error."""
    x = np.asarray(per_seed, dtype=float)
    if len(x) < 2:
        return Estimate(float(x.mean()), -math.inf, math.inf, method + " (one seed: seed variance unknown)",
                        math.inf, 0.0, replicate_unit="seeds", replicates=len(x), fixed_var=fixed_var,
                        per_replicate=tuple(x))
    return _t_estimate(float(x.mean()), float(x.var(ddof=1)), len(x), fixed_var, method, "seeds", x)


def exact(value: float, method: str = "deterministic count: no sampling error") -> Estimate:
    return Estimate(float(value), float(value), float(value), method, se=0.0, df=math.inf)


def cluster_indices(clusters: Optional[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap resample of `n` units: units drawn with replacement, or, given each unit's cluster id,
    whole clusters drawn with replacement (all of a drawn cluster's units, as often as it is drawn)."""
    if clusters is None:
        return rng.integers(0, n, n)
    ids, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    return np.concatenate([members[c] for c in rng.integers(0, len(ids), len(ids))])


def seeded(statistic: Callable[..., float], *arrays: np.ndarray, resamples: int = 2000, seed: int = 0,
           unit: str = "images", clusters: Optional[np.ndarray] = None) -> Estimate:
    """`statistic` per training seed, averaged over seeds, with seeds as a random effect.

    Each array is [seeds, units, ...], all sharing their seed and unit axes (paired: seed s of
    every array is a replicate trained from seed s; unit i the same val image). `statistic` takes
    one seed's slices. Interval: mean +- t(S - 1) * sqrt(s_seed^2 / S + v_images), where s_seed^2
    is the variance of the per-seed values and v_images the bootstrap variance (over `resamples`
    resamples of the units, the same for every seed) of the seed-averaged statistic. Both parts contain the residual (seed x image) noise once, so the interval
    errs wide. One seed: the seed variance is unknown and the interval unbounded. `clusters` (one id per
    unit, e.g. each val image's source digit): the bootstrap draws whole clusters, for units that are
    not independent.
    """
    arrays = [np.asarray(a) for a in arrays]
    s, n = arrays[0].shape[:2]
    if any(a.shape[:2] != (s, n) for a in arrays):
        raise ValueError("seeded: the arrays must share their seed and unit axes (paired data)")
    per_seed = np.array([statistic(*(a[k] for a in arrays)) for k in range(s)], dtype=float)
    value = float(per_seed.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(resamples)
    for i in range(resamples):
        idx = cluster_indices(clusters, n, rng)
        boot[i] = np.mean([statistic(*(a[k][idx] for a in arrays)) for k in range(s)])
    v_images = float(boot.var(ddof=1))
    drawn = unit if clusters is None else f"{unit} clustered in {len(np.unique(clusters))} source digits"
    method = (f"seeds as a random effect: t over {s} seeds + bootstrap over {n} {drawn} ({resamples} resamples), "
              f"{s - 1} df")
    if s < 2:
        return Estimate(value, -math.inf, math.inf, method + " (one seed: seed variance unknown)", math.inf, 0.0,
                        replicate_unit="seeds", replicates=s, fixed_var=v_images,
                        per_replicate=tuple(per_seed))
    return _t_estimate(value, float(per_seed.var(ddof=1)), s, v_images, method, "seeds", per_seed)


def bootstrap(statistic: Callable[..., float], *arrays: np.ndarray, resamples: int = 2000, seed: int = 0,
              unit: str = "models") -> Estimate:
    """Percentile bootstrap of `statistic(*arrays)` over the units of [units, ...] arrays, resampled
    with the same indices (paired). For untrained data only: trained-here data goes to `seeded`."""
    arrays = [np.asarray(a) for a in arrays]
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError("bootstrap: the arrays must share their unit axis (paired data)")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, n, n)
        values[i] = statistic(*(a[idx] for a in arrays))
    low, high = np.percentile(values, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    value = float(statistic(*arrays))
    return Estimate(value, min(float(low), value), max(float(high), value),
                    f"percentile bootstrap, {resamples} resamples of {n} {unit}")


def t_interval(samples: Sequence[float], what: str = "rounds") -> Estimate:
    """Mean of `samples` with its Student-t 95% interval."""
    x = np.asarray(samples, dtype=float)
    n = len(x)
    if n < 2:
        raise ValueError("a t-interval needs at least two samples")
    return _t_estimate(float(x.mean()), float(x.var(ddof=1)), n, 0.0, f"t-interval, {n} {what}",
                       what.split()[-1], x)


def log_ratio_interval(ratios: Sequence[float], what: str = "interleaved timing rounds") -> Estimate:
    """Geometric mean of per-round ratios with a t-interval on their logs (rounds alternate the two
    models, so drift in the machine's speed hits both sides of each ratio). `se`/`df` are on log scale."""
    r = np.asarray(ratios, dtype=float)
    e = t_interval(np.log(r), what)
    return Estimate(math.exp(e.value), math.exp(e.low), math.exp(e.high), f"t-interval on log ratios, {e.method[12:]}",
                    e.se, e.df, True, e.replicate_unit, e.replicates, e.replicate_var,
                    per_replicate=tuple(float(v) for v in r))


def proportion_difference(p1: float, p2: float, n1: int, n2: int) -> Estimate:
    """p1 - p2 for two rates (fractions) on n1 and n2 independent trials; normal approximation."""
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = 1.959963984540054
    d = p1 - p2
    return Estimate(d, d - z * se, d + z * se, f"normal approximation, {n1} and {n2} images (unpaired)", se, math.inf,
                    fixed_var=se ** 2)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
