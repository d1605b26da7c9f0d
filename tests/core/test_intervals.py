"""Intervals: exact answers on degenerate data, the textbook width on normal data, pairing kept, and
the coverage of the seeded (seeds as a random effect) interval checked by simulation at this lab's
variances, beside the percentile scheme it replaces."""
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analysis.core.intervals import (Estimate, bootstrap, exact, log_ratio_interval, proportion_difference, seeded,
                                        t_interval)

from ..evidence.crossed_anova import anova_interval


def test_constant_data_gives_a_zero_width_interval_at_the_value():
    e = bootstrap(np.mean, np.full(50, 3.0))
    assert (e.value, e.low, e.high) == (3.0, 3.0, 3.0)
    assert exact(7).low == exact(7).high == 7.0


def test_bootstrap_of_a_mean_has_the_normal_width():
    x = np.random.default_rng(1).normal(0, 2.0, 900)
    e = bootstrap(np.mean, x)
    assert e.value == pytest.approx(x.mean())
    assert e.high - e.low == pytest.approx(2 * 1.96 * 2.0 / 30, rel=0.15)
    assert "900 models" in e.method


def test_paired_resampling_keeps_pairs_together():
    x = np.random.default_rng(2).normal(size=200)
    e = bootstrap(lambda a, b: float(a.mean() - b.mean()), x, x + 1.0)  # the same images, shifted: no noise
    assert e.low == pytest.approx(-1.0) and e.high == pytest.approx(-1.0)


def test_seeded_known_answers():
    rng = np.random.default_rng(3)
    same_seeds = np.repeat(rng.normal(size=(1, 300)), 3, axis=0)
    e = seeded(np.mean, np.ones((3, 40)))
    assert (e.value, e.low, e.high, e.se) == (1.0, 1.0, 1.0, 0.0)      # no noise at all: zero width
    spread = same_seeds + np.array([[-2.0], [0.0], [2.0]])             # seeds differ by a constant
    narrow, wide = seeded(np.mean, same_seeds), seeded(np.mean, spread)
    assert narrow.value == pytest.approx(wide.value)
    assert wide.per_replicate == pytest.approx(tuple(narrow.value + np.array([-2.0, 0.0, 2.0])))
    # the seed part is exactly the t-interval of the per-seed values (sd 2, 3 seeds) plus the image part
    assert wide.replicate_var == pytest.approx(4.0) and wide.fixed_var == pytest.approx(narrow.fixed_var)
    assert wide.df == 2 and wide.high - wide.low > 2 * stats.t.ppf(0.975, 2) * 2 / math.sqrt(3)
    paired = seeded(lambda a, b: float(a.mean() - b.mean()), spread, spread + 1.0)   # pairs kept: no noise
    assert (paired.low, paired.high) == pytest.approx((-1.0, -1.0))
    one = seeded(np.mean, spread[:1])
    assert (one.low, one.high) == (-math.inf, math.inf)                # one seed: its variance is unknown
    with pytest.raises(ValueError):
        seeded(np.mean, np.zeros((3, 10)), np.zeros((2, 10)))


def _percentile_over_seeds_and_images(y: np.ndarray, resamples: int, rng) -> tuple[float, float]:
    """The scheme the scorecard used before: a percentile bootstrap resampling seeds, then images."""
    s, n = y.shape
    values = [y[rng.integers(0, s, s)][:, rng.integers(0, n, n)].mean() for _ in range(resamples)]
    return tuple(np.percentile(values, [2.5, 97.5]))


# This lab's variance components (sigma_seed, sigma_image, sigma_residual; method of moments on the
# committed micro tables, `test_simulated_variances_are_this_labs`): head similarity, last third of
# layers minus first third (micro DeiT 3 heads, 128 images), and a top-1 difference (micro (b) vs
# MHSA, 1000 images, 0/100 per image).
LAB_VARIANCES = {"head similarity": ((10.0, 4.9, 13.4), 128), "top-1 difference": ((3.4, 6.2, 47.1), 1000)}


def _coverage(sigmas, images, seeds, simulations=1000, resamples=200, truth=1.0):
    rng = np.random.default_rng(seeds)
    ours = old = 0
    for _ in range(simulations):
        y = (truth + sigmas[0] * rng.normal(size=(seeds, 1)) + sigmas[1] * rng.normal(size=(1, images))
             + sigmas[2] * rng.normal(size=(seeds, images)))
        e = seeded(np.mean, y, resamples=resamples, seed=int(rng.integers(1 << 31)))
        ours += e.low <= truth <= e.high
        if seeds == 3:
            lo, hi = _percentile_over_seeds_and_images(y, resamples, rng)
            old += lo <= truth <= hi
    return ours / simulations, old / simulations


@pytest.mark.slow
@pytest.mark.parametrize("name", LAB_VARIANCES)
def test_seeded_interval_covers_the_truth_at_3_5_and_10_seeds(name):
    """>= 93% coverage of the nominal 95% interval in 1,000 simulations at each seed count; the
    percentile scheme it replaces falls short at 3 seeds (~75-89% at these variances)."""
    sigmas, images = LAB_VARIANCES[name]
    for seeds in (3, 5, 10):
        ours, old = _coverage(sigmas, images, seeds)
        print(f"{name}, {seeds} seeds: seeded {ours:.3f}" + (f", percentile {old:.3f}" if seeds == 3 else ""))
        assert ours >= 0.93, f"{name}: the seeded interval covers {ours:.1%} at {seeds} seeds"
        if seeds == 3:
            assert old < 0.93, f"{name}: the percentile scheme covers {old:.1%} at 3 seeds"


@pytest.mark.artifacts
def test_simulated_variances_are_this_labs():
    """The simulation's variances are the committed micro tables' (method of moments), to 10%."""
    import pandas as pd

    from analysis.lab.replicates import correct_matrix, similarity_array

    from ..evidence.crossed_anova import variance_components

    root = Path(__file__).resolve().parents[2] / "results" / "micro"
    sim = similarity_array(pd.read_csv(root / "head_similarity_images.csv.gz"), "deit_3h")
    late_early = sim[..., -2:].mean(-1) - sim[..., :2].mean(-1)
    p = pd.read_csv(root / "predictions.csv.gz")
    diff = 100 * (correct_matrix(p, "fig2_b") - correct_matrix(p, "t6_mhsa"))
    for y, (name, (sigmas, images)) in zip((late_early, diff), LAB_VARIANCES.items()):
        assert y.shape[1] == images
        assert variance_components(y) == pytest.approx(sigmas, rel=0.1), name


def test_seeded_is_at_least_as_wide_as_an_independent_crossed_anova_interval():
    rng = np.random.default_rng(5)
    for sigmas in ((10.0, 4.9, 13.4), (0.5, 6.0, 40.0), (0.0, 0.0, 1.0)):
        y = 2.0 + sigmas[0] * rng.normal(size=(3, 1)) + sigmas[1] * rng.normal(size=(1, 300)) + sigmas[2] * rng.normal(
            size=(3, 300))
        e = seeded(np.mean, y, resamples=2000)
        m, lo, hi = anova_interval(y)
        assert e.value == pytest.approx(m)
        assert e.high - e.low >= 0.97 * (hi - lo)            # Monte Carlo error of the image bootstrap: 3%


def test_log_ratio_interval_is_the_t_interval_of_the_logs():
    ratios = [1.9, 2.1, 2.0, 2.2, 1.8]
    e = log_ratio_interval(ratios)
    logs = np.log(ratios)
    half = stats.t.ppf(0.975, 4) * logs.std(ddof=1) / math.sqrt(5)
    assert e.value == pytest.approx(math.exp(logs.mean()))
    assert (e.low, e.high) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    assert log_ratio_interval([1.5, 1.5, 1.5]).low == pytest.approx(1.5)


def test_proportion_difference_known_answer():
    e = proportion_difference(0.5, 0.5, 100, 100)
    assert e.value == 0 and e.high == pytest.approx(1.96 * math.sqrt(0.25 / 100 * 2), rel=1e-3) and e.low == -e.high


def test_an_estimate_outside_its_interval_is_refused():
    with pytest.raises(ValueError):
        Estimate(2.0, 0.0, 1.0, "")


def test_t_interval_known_answer():
    e = t_interval([1.0, 2.0, 3.0])
    assert e.value == 2.0 and e.high - 2.0 == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    with pytest.raises(ValueError):
        t_interval([1.0])
