"""Power: the smallest detectable effect has the textbook form, is detected 80% of the time in
simulation, and the replicates needed shrink it below a target (or cannot, when images limit)."""
import math

import numpy as np
import pytest
from scipy import stats

from analysis.core.intervals import Estimate, exact, seeded, t_interval
from analysis.evidence.power import detectable_effect, replicates_needed
from analysis.evidence.verdicts import Direction, verdict


def _power(effect_over_se: float, df: float) -> float:
    crit = stats.t.ppf(0.975, df)
    return stats.nct.sf(crit, df, effect_over_se) + stats.nct.cdf(-crit, df, effect_over_se)


def test_detectable_effect_known_answers():
    e = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    se = np.std([1, 2, 3, 4, 5], ddof=1) / math.sqrt(5)
    assert _power(detectable_effect(e) / se, 4) == pytest.approx(0.8, abs=1e-6)
    assert _power(detectable_effect(e, 20) / (se * math.sqrt(5 / 20)), 19) == pytest.approx(0.8, abs=1e-6)
    # many replicates: the normal formula (z_0.975 + z_0.8) * se
    assert detectable_effect(e, 1000) == pytest.approx((1.959964 + 0.841621) * se * math.sqrt(5 / 1000), rel=0.01)
    normal = Estimate(0.0, -1.96, 1.96, "", se=1.0, df=math.inf, fixed_var=1.0)   # images only (no seeds)
    assert detectable_effect(normal) == pytest.approx(1.959964 + 0.841621, rel=1e-5)
    assert math.isnan(detectable_effect(exact(3.0)))


def test_an_effect_at_the_detectable_size_is_found_80_percent_of_the_time():
    """5 seeds x 200 images at lab-like variances (seed sd 3, image sd 2, residual 10): an effect equal to
    the detectable effect of the true variances is decided (reproduced) in about 80% of 600 simulated runs
    (a little less: the interval counts the residual twice, so it errs wide)."""
    rng = np.random.default_rng(0)
    s, n, (sa, sb, se) = 5, 200, (3.0, 2.0, 10.0)
    truth = Estimate(0.0, 0.0, 0.0, "", se=1.0, df=s - 1, replicates=s, replicate_var=sa ** 2 + se ** 2 / n,
                     fixed_var=sb ** 2 / n + se ** 2 / (s * n))
    effect = detectable_effect(truth)

    def run():
        y = effect + sa * rng.normal(size=(s, 1)) + sb * rng.normal(size=(1, n)) + se * rng.normal(size=(s, n))
        return seeded(np.mean, y, resamples=200, seed=int(rng.integers(1 << 30)))

    hits = sum(verdict(Direction(+1), run()) == "reproduced" for _ in range(600))
    assert 0.72 <= hits / 600 <= 0.86


def test_replicates_needed():
    e = t_interval([0.0, 2.0, 4.0])                     # sd 2
    n = replicates_needed(e, 1.0)
    assert detectable_effect(e, n) <= 1.0 < detectable_effect(e, n - 1)
    assert replicates_needed(e, 100.0) == 2
    images_limit = Estimate(0.0, -1, 1, "", se=1.0, df=2, replicates=3, replicate_var=0.3, fixed_var=0.9)
    assert replicates_needed(images_limit, 1.0) == math.inf   # the image part alone detects > 1: more images
    assert math.isnan(replicates_needed(e, math.nan))
