"""Verdict rules: known answers on both sides of a boundary and of an equivalence band."""
import math

import pytest

from analysis.evidence.verdicts import VERDICTS, Direction, Equivalence, verdict


@pytest.mark.parametrize("low, high, expected", [(0.1, 0.5, "reproduced"), (-0.5, -0.1, "contradicted"),
                                                 (-0.1, 0.1, "inconclusive"), (0.0, 0.3, "inconclusive")])
def test_direction_above_zero(low, high, expected):
    assert verdict(Direction(+1), low, high) == expected
    assert verdict(Direction(-1), -high, -low) == expected  # the mirror image: the paper's side is below


def test_direction_with_a_boundary():
    rule = Direction(+1, boundary=-1.0)  # "costs under one point"
    assert verdict(rule, -0.8, 0.4) == "reproduced"
    assert verdict(rule, -3.0, -1.2) == "contradicted"
    assert verdict(rule, -1.5, 0.2) == "inconclusive"
    assert rule.region(math.nan) == (-1.0, math.inf)


@pytest.mark.parametrize("low, high, expected", [(-0.5, 0.9, "reproduced"), (1.2, 2.0, "contradicted"),
                                                 (-3.0, -1.1, "contradicted"), (0.5, 1.5, "inconclusive"),
                                                 (-2.0, 2.0, "inconclusive")])
def test_equivalence_band(low, high, expected):
    assert verdict(Equivalence(1.0), low, high) == expected
    assert verdict(Equivalence(1.0, around=10.0), low + 10, high + 10) == expected


def test_an_undecidable_scale_or_missing_interval_is_inconclusive():
    assert verdict(Direction(+1), 1.0, 2.0, decidable=False) == "inconclusive"
    assert verdict(Direction(+1), math.nan, 2.0) == "inconclusive"
    assert set(VERDICTS) == {"reproduced", "contradicted", "inconclusive"}


def test_bad_rules_and_intervals_are_refused():
    with pytest.raises(ValueError):
        Direction(0)
    with pytest.raises(ValueError):
        verdict(Direction(+1), 2.0, 1.0)
