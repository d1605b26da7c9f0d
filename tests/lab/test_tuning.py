"""The meso search: its runs, and the choices it makes from a table of tune scores (known answers)."""
import pandas as pd
import pytest

from analysis.lab.recipes import MESO_RECIPES, STEM4, STEM16
from analysis.lab.tuning import (LR_FACTORS, SEARCH_SEED, choose, design_bases, search_recipes, tuned_recipes)


def _table(scores: dict) -> pd.DataFrame:
    """scores: {(design, augment): [tune top-1 at each LR factor]}."""
    return pd.DataFrame([{"design": d, "augment": a, "lr": 1e-3 * f, "tune_top1": s}
                         for (d, a), row in scores.items() for f, s in zip(LR_FACTORS, row)])


def test_search_runs_are_the_design_base_at_each_factor_with_fewer_epochs_and_their_own_seed():
    base = design_bases()[STEM16]
    assert base.key == "meso_fig2_b"
    runs = search_recipes(base, ("none", "shift"))
    cfgs = [r.config() for r in runs]
    assert [c.lr for c in cfgs] == pytest.approx([base.config().lr * f for f in LR_FACTORS] * 2)
    assert {c.augment for c in cfgs} == {"none", "shift"} and {c.seed for c in cfgs} == {SEARCH_SEED}
    assert {c.epochs for c in cfgs} == {2}  # 40% of 5 epochs
    assert len({r.digest() for r in runs}) == 6 and all(r.design == STEM16 for r in runs)
    assert design_bases()["DeiT, 3 heads"].key == "meso_deit_3h"
    assert {r.design for r in MESO_RECIPES.values()} == set(design_bases())


def test_shift_is_chosen_only_when_it_helps_both_fig2_designs():
    both = _table({(STEM16, "none"): [50, 60, 55], (STEM16, "shift"): [52, 63, 61],
                   (STEM4, "none"): [70, 71, 69], (STEM4, "shift"): [72, 70, 68],
                   ("MHSA", "shift"): [40, 45, 45]})
    choice = choose(both)
    assert {c["augment"] for c in choice.values()} == {"shift"}
    assert choice[STEM16]["lr"] == pytest.approx(1e-3) and choice[STEM16]["tune_top1"] == 63
    assert choice[STEM4]["lr"] == pytest.approx(0.5e-3)
    assert choice["MHSA"]["lr"] == pytest.approx(1e-3)  # a tie goes to the smaller learning rate
    one = _table({(STEM16, "none"): [50, 60, 55], (STEM16, "shift"): [52, 63, 61],
                  (STEM4, "none"): [70, 73, 69], (STEM4, "shift"): [72, 70, 68],
                  ("MHSA", "none"): [40, 41, 45]})
    choice = choose(one)
    assert {c["augment"] for c in choice.values()} == {"none"}
    assert choice[STEM16]["lr"] == pytest.approx(1e-3) and choice[STEM4]["lr"] == pytest.approx(1e-3)
    assert choice["MHSA"]["lr"] == pytest.approx(2e-3)


def test_tuned_recipes_take_their_designs_choice_and_keep_everything_else():
    choice = {d: {"lr": 1e-3 * (i + 1), "augment": "shift"} for i, d in enumerate(design_bases())}
    tuned = tuned_recipes(choice)
    for key, r in tuned.items():
        cfg, old = r.config(), MESO_RECIPES[key].config()
        assert cfg.lr == choice[r.design]["lr"] and cfg.augment == "shift"
        assert "augment" in {k for k, v in cfg.to_dict().items() if old.to_dict()[k] != v} <= {"lr", "augment"}
    assert tuned["meso_fig2_b"].config().lr == tuned["meso_fig2_b_w96"].config().lr  # one design, one lr
