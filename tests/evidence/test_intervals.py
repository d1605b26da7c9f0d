"""Intervals: exact answers on degenerate data, the textbook width on normal data, pairing kept."""
import math

import numpy as np
import pytest
from scipy import stats

from analysis.evidence.intervals import Estimate, bootstrap, exact, log_ratio_interval, proportion_difference, t_interval


def test_constant_data_gives_a_zero_width_interval_at_the_value():
    e = bootstrap(np.mean, np.full(50, 3.0))
    assert (e.value, e.low, e.high) == (3.0, 3.0, 3.0)
    assert exact(7).low == exact(7).high == 7.0


def test_bootstrap_of_a_mean_has_the_normal_width():
    x = np.random.default_rng(1).normal(0, 2.0, 900)
    e = bootstrap(np.mean, x)
    assert e.value == pytest.approx(x.mean())
    assert e.high - e.low == pytest.approx(2 * 1.96 * 2.0 / 30, rel=0.15)
    assert "900 images" in e.method


def test_paired_resampling_keeps_pairs_together():
    x = np.random.default_rng(2).normal(size=200)
    e = bootstrap(lambda a, b: float(a.mean() - b.mean()), x, x + 1.0)  # the same images, shifted: no noise
    assert e.low == pytest.approx(-1.0) and e.high == pytest.approx(-1.0)


def test_seed_axis_is_resampled_too():
    rng = np.random.default_rng(3)
    same_seeds = np.repeat(rng.normal(size=(1, 300)), 3, axis=0)
    spread_seeds = same_seeds + np.array([[-2.0], [0.0], [2.0]])  # seeds differ by a constant
    narrow = bootstrap(np.mean, same_seeds, seeded=True)
    wide = bootstrap(np.mean, spread_seeds, seeded=True)
    assert narrow.value == pytest.approx(wide.value)
    assert wide.high - wide.low > 5 * (narrow.high - narrow.low)
    assert "x 3 seeds" in wide.method
    with pytest.raises(ValueError):
        bootstrap(np.mean, np.zeros((3, 10)), np.zeros((2, 10)), seeded=True)


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
