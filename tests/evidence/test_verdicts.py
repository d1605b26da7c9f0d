"""Verdict rules: known answers on both sides of a boundary and of an equivalence band, the t-test
agreeing with the 95% interval, and the two verdicts that say why nothing was decided."""
import math

import numpy as np
import pytest

from analysis.core.intervals import Estimate, exact, log_ratio_interval, t_interval
from analysis.evidence.verdicts import VERDICTS, Direction, Equivalence, rule_from_spec, verdict


def _interval(low: float, high: float) -> Estimate:
    """An interval-only estimate (no standard error): decided by its interval."""
    return Estimate((low + high) / 2, low, high, "given")


@pytest.mark.parametrize("low, high, expected", [(0.1, 0.5, "reproduced"), (-0.5, -0.1, "contradicted"),
                                                 (-0.1, 0.1, "inconclusive"), (0.0, 0.3, "inconclusive")])
def test_direction_above_zero(low, high, expected):
    assert verdict(Direction(+1), _interval(low, high)) == expected
    assert verdict(Direction(-1), _interval(-high, -low)) == expected  # the mirror image: the paper's side is below


def test_direction_with_a_boundary():
    rule = Direction(+1, boundary=-1.0)  # "costs under one point"
    assert verdict(rule, _interval(-0.8, 0.4)) == "reproduced"
    assert verdict(rule, _interval(-3.0, -1.2)) == "contradicted"
    assert rule.region(math.nan) == (-1.0, math.inf)
    assert rule.target(math.nan) == 1.0 and rule.target(-0.5) == 0.5     # no paper number: no cost vs -1
    assert math.isnan(Direction(+1).target(math.nan)) and math.isnan(rule.target(-2.0))


@pytest.mark.parametrize("low, high, expected", [(-0.5, 0.9, "reproduced"), (1.2, 2.0, "contradicted"),
                                                 (-3.0, -1.1, "contradicted"), (0.5, 1.5, "inconclusive"),
                                                 (-2.0, 2.0, "inconclusive")])
def test_equivalence_band(low, high, expected):
    assert verdict(Equivalence(1.0), _interval(low, high)) == expected
    assert verdict(Equivalence(1.0, around=10.0), _interval(low + 10, high + 10)) == expected


@pytest.mark.parametrize("rule", [Direction(+1), Direction(-1, 0.5), Equivalence(1.0), Equivalence(0.5, around=1.0),
                                  Direction(+1, 1.0, log=True)])
def test_the_t_test_decides_as_the_95_percent_interval(rule):
    """For t-interval estimates, p < 0.05 exactly when the interval decides (same side, same band)."""
    rng = np.random.default_rng(0)
    agree = 0
    for _ in range(300):
        x = rng.normal(rng.uniform(-2, 2), rng.uniform(0.1, 2), size=int(rng.integers(3, 12)))
        e = log_ratio_interval(np.exp(x)) if rule.log else t_interval(x)
        by_interval = rule.decide(e.low, e.high, math.nan)
        p, supports = rule.test(e)
        by_test = supports if p < 0.05 else "inconclusive"
        agree += by_interval == by_test or abs(p - 0.05) < 1e-9
    assert agree == 300


def test_not_testable_underpowered_and_inconclusive():
    rule = Direction(+1, -1.0)
    wide = Estimate(0.0, -5.0, 5.0, "", se=2.5, df=10)
    assert verdict(rule, wide, testable=False) == "not testable"
    assert verdict(rule, wide, detectable=7.0) == "underpowered"          # detects 7, must resolve 1
    assert verdict(rule, wide, detectable=0.5) == "inconclusive"          # could have decided, did not
    assert verdict(rule, wide, p_value=0.001) == "reproduced"             # a (Holm-)adjusted p decides
    assert verdict(rule, Estimate(0.0, -math.inf, math.inf, "", math.inf, 0.0), detectable=math.inf) == "underpowered"
    assert verdict(Equivalence(2.0), exact(0.5)) == "reproduced"
    assert verdict(Direction(+1), Estimate(math.nan, math.nan, math.nan, "")) == "inconclusive"
    assert set(VERDICTS) == {"reproduced", "contradicted", "inconclusive", "underpowered", "not testable"}


def test_rules_from_the_registry_and_bad_rules_refused():
    assert rule_from_spec({"type": "direction", "side": 1, "boundary": -1.0}) == Direction(1, -1.0)
    assert rule_from_spec({"type": "equivalence", "margin": 2.0}) == Equivalence(2.0)
    with pytest.raises(ValueError):
        rule_from_spec({"type": "superiority"})
    with pytest.raises(ValueError):
        Direction(0)
    with pytest.raises(ValueError):
        Direction(1, 0.0, log=True)
    with pytest.raises(ValueError):
        verdict(Direction(+1), Estimate(math.nan, 2.0, 1.0, ""))             # a reversed interval
