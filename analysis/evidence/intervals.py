"""95% intervals for the scorecard, each with the sentence that says how it was computed.

- `bootstrap`: percentile bootstrap over paired units (images; and seeds, resampled first, when
  the data has a seed axis): the statistic is recomputed on each resample of the same indices
  for every array, so paired comparisons (two models on the same images) keep their pairing.
- `t_interval`: the mean of a few paired rounds (e.g. a difference measured once per round).
- `log_ratio_interval`: a speed ratio from interleaved timing rounds, t-interval on log ratios.
- `proportion_difference`: two hit rates on n images each, normal approximation (unpaired).
- `exact`: a deterministic count (MACs, parameters): the interval is the value itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..core.errors import not_a_command

__all__ = ["Estimate", "bootstrap", "exact", "t_interval", "log_ratio_interval", "proportion_difference"]

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A measured value with its 95% interval [low, high] and how the interval was obtained."""

    value: float
    low: float
    high: float
    method: str

    def __post_init__(self):
        if not (self.low <= self.value <= self.high) and not math.isnan(self.value):
            raise ValueError(f"value {self.value} outside its interval [{self.low}, {self.high}]")


def exact(value: float, method: str = "deterministic count: no sampling error") -> Estimate:
    return Estimate(float(value), float(value), float(value), method)


def bootstrap(statistic: Callable[..., float], *arrays: np.ndarray, seeded: bool = False, resamples: int = 2000,
              seed: int = 0, unit: str = "images") -> Estimate:
    """Percentile bootstrap of `statistic(*arrays)`.

    Each array is [units, ...] (or [seeds, units, ...] when `seeded`); all are resampled with
    the same indices, seeds (with replacement) then units. The point value is the statistic of
    the data as given; the interval, the 2.5th and 97.5th percentiles over `resamples`.
    """
    arrays = [np.asarray(a) for a in arrays]
    axis = 1 if seeded else 0
    n = arrays[0].shape[axis]
    s = arrays[0].shape[0] if seeded else 1
    if any(a.shape[axis] != n or (seeded and a.shape[0] != s) for a in arrays):
        raise ValueError("bootstrap: the arrays must share their seed and unit axes (paired data)")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, n, n)
        if seeded:
            sdx = rng.integers(0, s, s)
            values[i] = statistic(*(a[sdx][:, idx] for a in arrays))
        else:
            values[i] = statistic(*(a[idx] for a in arrays))
    low, high = np.percentile(values, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    value = float(statistic(*arrays))
    seeds = f" x {s} seeds" if seeded else ""
    return Estimate(value, min(float(low), value), max(float(high), value),
                    f"percentile bootstrap, {resamples} resamples of {n} {unit}{seeds}")


def t_interval(samples: Sequence[float], what: str = "rounds") -> Estimate:
    """Mean of `samples` with its Student-t 95% interval."""
    from scipy.stats import t

    x = np.asarray(samples, dtype=float)
    n = len(x)
    if n < 2:
        raise ValueError("a t-interval needs at least two samples")
    half = t.ppf((1 + LEVEL) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    m = float(x.mean())
    return Estimate(m, m - half, m + half, f"t-interval, {n} {what}")


def log_ratio_interval(ratios: Sequence[float], what: str = "interleaved timing rounds") -> Estimate:
    """Geometric mean of per-round ratios with a t-interval on their logs (rounds alternate the two
    models, so drift in the machine's speed hits both sides of each ratio)."""
    e = t_interval(np.log(np.asarray(ratios, dtype=float)), what)
    return Estimate(math.exp(e.value), math.exp(e.low), math.exp(e.high), f"t-interval on log ratios, {e.method[12:]}")


def proportion_difference(p1: float, p2: float, n1: int, n2: int) -> Estimate:
    """p1 - p2 for two rates (fractions) on n1 and n2 independent trials; normal approximation."""
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = 1.959963984540054
    d = p1 - p2
    return Estimate(d, d - z * se, d + z * se, f"normal approximation, {n1} and {n2} images (unpaired)")


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
