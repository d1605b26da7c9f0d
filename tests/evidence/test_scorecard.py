"""The claim scorecard: the committed table passes the acceptance check (its verdicts recomputed
from its intervals by each claim's rule), and the claim plumbing gives known answers on micro
tables written here (a model right on every image vs one right on none; a 3x3 vs 7x7 grid)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.core.errors import UserError
from analysis.evidence import claims as sc
from analysis.evidence.plots import VERDICT_COLOURS, plot_scorecard
from analysis.evidence.verdicts import VERDICTS, verdict
from analysis.lab.cache import table_path

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.artifacts
def test_committed_scorecard_passes_the_acceptance_check():
    card = pd.read_csv(REPO / "results" / "claims.csv")
    assert len(card) >= 10 and list(card.columns) == sc.SCORECARD_COLUMNS
    assert card[["ours", "ci_low", "ci_high"]].notna().all().all()
    assert ((card.ci_low <= card.ours) & (card.ours <= card.ci_high)).all()
    assert set(card.verdict) <= set(VERDICTS)
    rules = {c.id: c.rule for c in sc.CLAIMS}
    for row in card.itertuples():  # every verdict, recomputed from its interval
        assert verdict(rules[row.claim], row.ci_low, row.ci_high, row.paper_value, row.decidable) == row.verdict
    assert set(card.scale.str.split(" ").str[0]) == {"full", "micro", "meso"} and card.weights.notna().all()


def _write_lab(root: Path, correct: dict, seeds: int = 3, images: int = 40):
    """A lab scale's predictions table: `correct[key]` is the share of images each replicate of `key` gets right."""
    rows = []
    for key, share in correct.items():
        for seed in range(seeds):
            labels = np.arange(images) % 10
            pred = np.where(np.arange(images) < share * images, labels, (labels + 1) % 10)
            rows.append(pd.DataFrame({"key": key, "seed": seed, "image": range(images), "label": labels, "pred": pred}))
    root.mkdir(parents=True, exist_ok=True)
    pd.concat(rows).to_csv(table_path("predictions", root), index=False)
    return root


def test_top1_difference_known_answers(tmp_path):
    _write_lab(tmp_path, {"fig2_b": 1.0, "fig2_a": 0.0, "t6_mhsa": 1.0})
    t = sc._Tables(None, tmp_path)
    everything = sc._top1_difference(t, "fig2_b", "fig2_a")
    assert (everything.value, everything.low, everything.high) == (100.0, 100.0, 100.0)
    same = sc._top1_difference(t, "fig2_b", "t6_mhsa")
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    assert "40 images x 3 seeds" in same.method


def test_a_spatial_claim_needs_a_seven_by_seven_grid(tmp_path):
    """The same (equal) accuracies: undecidable on micro's 3x3 grid, reproduced on meso's 7x7 grid."""
    micro = _write_lab(tmp_path / "micro", {"fig2_b": 0.5, "fig2_a": 0.5})
    meso = _write_lab(tmp_path / "meso", {"meso_fig2_b": 0.5, "meso_fig2_a": 0.5})
    claim = next(c for c in sc.CLAIMS if c.id == "shvit_fig2_accuracy")
    card = sc.scorecard([claim], micro=micro, meso=meso)
    assert list(card.scale.str.split(" ").str[0]) == ["micro", "meso"] and (card.ours == 0).all()
    assert list(card.decidable) == [False, True] and list(card.verdict) == ["inconclusive", "reproduced"]
    assert list(card.note) == ["16x16 stem leaves a 3x3 token grid", "16x16 stem leaves a 7x7 token grid"]
    assert len(sc.scorecard([claim], micro=micro, meso=tmp_path / "not_run")) == 1  # meso rows need its suite


def test_a_missing_table_is_one_line_naming_the_command(tmp_path):
    claim = next(c for c in sc.CLAIMS if c.id == "shvit_fig2_accuracy")
    with pytest.raises(UserError, match=r"analysis\.ablations --all --seeds") as e:
        sc.scorecard([claim], micro=tmp_path, meso=tmp_path)
    assert "\n" not in str(e.value)


def test_scorecard_figure_has_a_panel_per_claim(figure_only, tmp_path_factory):
    micro = tmp_path_factory.mktemp("micro")
    _write_lab(micro, {"fig2_b": 0.5, "fig2_a": 0.25, "t6_mhsa": 0.5, "t6_none": 0.5, "t6_ratio2": 0.75})
    claims = [c for c in sc.CLAIMS if c.id in ("shvit_fig2_accuracy", "shvit_t6_mhsa_accuracy",
                                               "shvit_t6_attention_helps", "shvit_t6_partial_ratio")]
    card = sc.scorecard(claims, micro=micro, meso=micro / "not_run")
    assert list(card.verdict) == ["inconclusive", "reproduced", "inconclusive", "contradicted"]
    fig = plot_scorecard(card, columns=2)
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == 4
    colours = [[t.get_color() for t in ax.texts if t.get_text() in VERDICT_COLOURS] for ax in panels]
    assert colours == [[VERDICT_COLOURS[v]] for v in card.verdict]
