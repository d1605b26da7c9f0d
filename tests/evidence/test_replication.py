"""A meso rerun beside the committed suite: known answers for the per-model comparison (an identical run, a
run shifted by a known amount, a run missing seeds), and the committed suite's verdicts agreeing with
themselves."""
import math

import pandas as pd
import pytest
from scipy.stats import t as student_t

from analysis.core.errors import UserError
from analysis.core.paths import meso_root
from analysis.evidence.replication import top1_agreement, verdict_agreement

TOP1 = [60.0, 61.0, 62.0, 63.0, 64.0]   # between-seed SD sqrt(2.5)


def _suite(root, shift: dict, seeds: int = 5):
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"key": key, "seed": s, "val_top1": TOP1[s] + shift.get(key, 0.0)}
            for key in ("meso_fig2_b", "meso_fig2_a") for s in range(seeds)]
    pd.DataFrame(rows).to_csv(root / "models.csv", index=False)
    return root


def test_an_identical_run_agrees_and_a_shifted_one_is_measured_by_its_shift(tmp_path):
    reference = _suite(tmp_path / "ref", {})
    same = top1_agreement(_suite(tmp_path / "same", {}), reference).set_index("key")
    assert same["difference_pp"].tolist() == [0.0, 0.0] and same["p_value"].tolist() == pytest.approx([1.0, 1.0])
    assert same["reference_sd"].tolist() == pytest.approx([math.sqrt(2.5)] * 2)

    shifted = top1_agreement(_suite(tmp_path / "shifted", {"meso_fig2_a": 3.0}), reference).set_index("key")
    assert shifted.loc["meso_fig2_a", "difference_pp"] == pytest.approx(3.0)
    # Welch with equal spreads: t = 3 / sqrt(2 * 2.5 / 5) = 3 on 8 degrees of freedom
    assert shifted.loc["meso_fig2_a", "p_value"] == pytest.approx(2 * student_t.sf(3.0, 8))
    assert shifted.loc["meso_fig2_a", "p_holm"] == pytest.approx(2 * shifted.loc["meso_fig2_a", "p_value"])
    assert shifted.loc["meso_fig2_b", "difference_pp"] == 0.0


def test_a_rerun_without_its_seeds_or_tables_is_a_one_line_error(tmp_path):
    reference = _suite(tmp_path / "ref", {})
    with pytest.raises(UserError, match="meso_fig2_b has 1 trained seeds"):
        top1_agreement(_suite(tmp_path / "one", {}, seeds=1), reference)
    with pytest.raises(UserError, match="ablations --meso --root"):
        top1_agreement(tmp_path / "never_run", reference)


@pytest.mark.artifacts
@pytest.mark.slow   # the scorecard twice
def test_the_committed_suite_agrees_with_itself():
    rows = verdict_agreement(meso_root(), meso_root())
    assert len(rows) >= 4 and rows["same_verdict"].all()
    assert rows["ours_reference"].tolist() == rows["ours_replicate"].tolist()
