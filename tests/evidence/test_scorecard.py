"""The claim scorecard: known answers on lab tables written here (a model right on every image vs one
right on none; gates that pass and fail), Holm's correction as statsmodels computes it, and the
committed table passing two acceptance checks: its verdicts recomputed by each row's rule, and its
trained-here intervals at least as wide as an independent crossed seed x image ANOVA interval
recomputed from the committed per-image tables, with no verdict claiming more than that allows."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.core.errors import UserError
from analysis.evidence import claims as sc
from analysis.evidence import registry
from analysis.evidence.result_tables import ResultTables
from analysis.lab.recipes import MESO_FAMILIES
from analysis.core.intervals import Estimate
from analysis.evidence.plots import VERDICT_COLOURS, plot_scorecard
from analysis.evidence.verdicts import DECIDED, VERDICTS, verdict
from analysis.lab.cache import table_path

from .crossed_anova import anova_interval

REPO = Path(__file__).resolve().parents[2]


def _row(claim: str, scale: str) -> registry.Claim:
    return next(c for c in registry.CLAIMS if c.row == f"{claim}@{scale}")


def _write_lab(root: Path, correct: dict, seeds: int = 3, images: int = 40):
    """A lab scale's predictions table: `correct[key]` is the share of images each replicate of `key`
    gets right (a float), or one share per seed (a tuple)."""
    rows = []
    for key, share in correct.items():
        for seed in range(seeds):
            s = share[seed] if isinstance(share, tuple) else share
            labels = np.arange(images) % 10
            pred = np.where(np.arange(images) < s * images, labels, (labels + 1) % 10)
            rows.append(pd.DataFrame({"key": key, "seed": seed, "image": range(images), "label": labels, "pred": pred}))
    root.mkdir(parents=True, exist_ok=True)
    pd.concat(rows).to_csv(table_path("predictions", root), index=False)
    return root


def test_top1_difference_known_answers(tmp_path):
    _write_lab(tmp_path, {"fig2_b": 1.0, "fig2_a": 0.0, "t6_mhsa": 1.0})
    t = ResultTables(None, tmp_path, "micro")
    everything = sc._top1_difference(t, "fig2_b", "fig2_a").ours
    assert (everything.value, everything.low, everything.high) == (100.0, 100.0, 100.0)
    same = sc._top1_difference(t, "fig2_b", "t6_mhsa").ours
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    assert "3 seeds" in same.method and "40 images" in same.method and same.per_replicate == (0.0, 0.0, 0.0)


def test_declared_gates_known_answers():
    assert [sc.attention_grid(k) for k in ("deit_3h", "meso_deit_3h", "fig2_b", "meso_fig2_b", "t6_none")] == [
        6, 7, 2, 4, 0]


def test_a_spatial_claim_needs_a_seven_by_seven_grid(tmp_path):
    """The same (equal) accuracies: not testable on micro's 3x3 grid, reproduced on meso's 7x7 grid."""
    micro = _write_lab(tmp_path / "micro", {"fig2_b": 0.5, "fig2_a": 0.5})
    meso = _write_lab(tmp_path / "meso", {"meso_fig2_b": 0.5, "meso_fig2_a": 0.5})
    rows = [_row("shvit_fig2_accuracy", "micro"), _row("shvit_fig2_accuracy", "meso")]
    card = sc.scorecard(rows, micro=micro, meso=meso)
    assert list(card.scale.str.split(" ").str[0]) == ["micro", "meso"] and (card.ours == 0).all()
    assert list(card.testable) == [False, True] and list(card.verdict) == ["not testable", "reproduced"]
    assert list(card.precondition) == ["16x16 stem keeps 3x3 tokens (needs 7x7)", "16x16 stem keeps 7x7 tokens (needs 7x7)"]
    assert len(sc.scorecard(rows, micro=micro, meso=tmp_path / "not_run")) == 1  # meso rows need its suite


def test_quality_floor_and_seed_spread(tmp_path):
    """A DeiT below the no-attention SHViT is not testable; three seeds far apart leave an equivalence row
    underpowered, three identical ones decide it."""
    meso = _write_lab(tmp_path, {"meso_deit_3h": 0.4, "meso_t6_none": 0.6, "meso_fig2_b": (0.5, 0.6, 0.7),
                                 "meso_t6_mhsa": (0.6, 0.5, 0.55)})
    t = ResultTables(None, meso, "meso")
    ok, said = sc.check_preconditions(_row("shvit_fig3_remove_one", "meso"), t)
    assert not ok and "top-1 40.0% (deit_3h) vs floor 60.0% (t6_none)" in said
    e = sc._top1_difference(t, "fig2_b", "t6_mhsa").ours
    assert e.per_replicate == pytest.approx((-10.0, 10.0, 15.0)) and e.df == 2
    from analysis.evidence.power import detectable_effect
    assert verdict(_row("shvit_t6_mhsa_accuracy", "meso").rule, e, detectable=detectable_effect(e)) == "underpowered"


def test_holm_is_statsmodels_over_the_testable_findings(tmp_path):
    micro = _write_lab(tmp_path / "micro", {"fig2_b": (0.5, 0.6, 0.55), "fig2_a": (0.4, 0.45, 0.42)}, images=400)
    meso = _write_lab(tmp_path / "meso", {"meso_fig2_b": (0.5, 0.52, 0.55), "meso_fig2_a": (0.4, 0.45, 0.42),
                                          "meso_t6_mhsa": (0.5, 0.51, 0.56)}, images=400)
    rows = [_row("shvit_fig2_accuracy", "meso"), _row("shvit_fig2_accuracy", "micro"),
            _row("shvit_fig2_speed", "full"), _row("shvit_t1_sizes", "full")]
    card = sc.scorecard(rows, micro=micro, meso=meso).set_index("row")
    family = ["shvit_fig2_accuracy@meso", "shvit_fig2_speed@full"]         # micro: not testable; sizes: sanity
    assert card.p_holm.notna().sum() == 2
    assert list(card.p_holm[family]) == pytest.approx(list(multipletests(card.p_value[family], method="holm")[1]))
    assert (card.p_holm[family] >= card.p_value[family]).all()


def test_a_missing_table_is_one_line_naming_the_command(tmp_path):
    with pytest.raises(UserError, match=r"analysis\.ablations --all --seeds") as e:
        sc.scorecard([_row("shvit_fig2_accuracy", "micro")], micro=tmp_path, meso=tmp_path)
    assert "\n" not in str(e.value)


def test_scorecard_figure_has_a_panel_per_row(figure_only, tmp_path_factory):
    meso = tmp_path_factory.mktemp("meso")
    _write_lab(meso, {"meso_fig2_b": 0.5, "meso_fig2_a": 0.25, "meso_t6_mhsa": 0.5, "meso_t6_none": 0.5}, images=400)
    rows = [_row(c, "meso") for c in ("shvit_fig2_accuracy", "shvit_t6_mhsa_accuracy", "shvit_t6_attention_helps")]
    card = sc.scorecard(rows, micro=meso / "none", meso=meso)
    assert list(card.verdict) == ["reproduced", "not testable", "not testable"]
    fig = plot_scorecard(card, columns=2)
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == 3
    colours = [[t.get_color() for t in ax.texts if t.get_text() in VERDICT_COLOURS] for ax in panels]
    assert colours == [[VERDICT_COLOURS[v]] for v in card.verdict]
    assert all(any(t.get_text().endswith("post hoc") for t in ax.texts) for ax in panels)


# ---- acceptance checks on the committed scorecard ----------------------------------------------------------

@pytest.fixture(scope="module")
def card():
    return pd.read_csv(REPO / "results" / "claims.csv", keep_default_na=False, na_values=[""])


@pytest.mark.artifacts
def test_committed_scorecard_verdicts_follow_their_rules(card):
    assert len(card) >= 20 and list(card.columns) == sc.SCORECARD_COLUMNS
    assert ((card.ci_low <= card.ours) & (card.ours <= card.ci_high)).all()
    assert set(card.verdict) <= set(VERDICTS) and set(card.kind) == {"sanity", "finding"}
    rows = {c.row: c for c in registry.CLAIMS}
    for r in card.itertuples():
        c = rows[r.row]
        est = Estimate(r.ours, r.ci_low, r.ci_high, r.interval, r.se, r.df, c.rule.log)
        detectable = math.log(r.detectable_effect) if c.rule.log else r.detectable_effect
        p = None if math.isnan(r.p_holm) else r.p_holm
        assert verdict(c.rule, est, r.paper_value, bool(r.testable), p, detectable) == r.verdict, r.row
        if r.kind == "finding" and r.testable and r.se > 0 and math.isfinite(r.se):
            assert math.isfinite(r.p_holm) and r.p_holm >= r.p_value, r.row          # in Holm's family
        if r.replicate_unit == "rounds":
            assert r.replicates >= 10, f"{r.row}: a timing claim from {r.replicates} rounds"


def _per_image(row: registry.Claim, root: Path) -> np.ndarray:
    """[seeds, images] of the row's statistic per image, straight from the committed tables (pandas only)."""
    pre = "" if row.scale == "micro" else f"{row.scale}_"
    k = lambda name: pre + name  # noqa: E731
    read = lambda name: pd.read_csv(table_path(name, root))  # noqa: E731
    p = row.params
    if row.measure == "top1_difference":
        pr = read("predictions")
        ok = (pr.pred == pr.label).astype(float) * 100
        wide = pr.assign(ok=ok).pivot_table(index=["seed", "image"], columns="key", values="ok")
        d = wide[k(p["model"])] - wide[k(p["baseline"])]
        return d.unstack("image").to_numpy()
    if row.measure in ("late_minus_early", "similarity_difference"):
        h = read("head_similarity_images")
        per = h.pivot_table(index=["key", "seed", "image"], columns="layer", values="similarity_pct")
        if row.measure == "similarity_difference":
            d = per.loc[k(p["model"])].mean(1) - per.loc[k(p["baseline"])].mean(1)
        else:
            m = per.loc[k(p["model"])]
            third = m.shape[1] // 3
            d = m.iloc[:, -third:].mean(1) - m.iloc[:, :third].mean(1)
        return d.unstack("image").to_numpy()
    if row.measure == "remove_one_in_sample":
        a, pr = read("ablation_images"), read("predictions")
        pr = pr[pr.key == k(p["model"])].set_index(["seed", "image"])
        a = a[a.key == k(p["model"])].join(pr[["label", "pred"]].rename(columns={"pred": "intact"}), on=["seed", "image"])
        a["change"] = 100 * ((a.pred == a.label).astype(float) - (a.intact == a.label).astype(float))
        return a.groupby(["seed", "image"]).change.mean().unstack("image").to_numpy()
    if row.measure == "gradcam_paired":
        g = read("gradcam_images")
        pick = lambda name, layer: g[(g.key == k(name)) & (g.layer == layer)].set_index(["seed", "image"]).hit  # noqa
        d = 100 * (pick(p["model"], p["layer"]) - pick(p["baseline"], p["baseline_layer"]))
        return d.unstack("image").to_numpy(dtype=float)
    raise KeyError(row.measure)


INDEPENDENT = ("top1_difference", "late_minus_early", "similarity_difference", "remove_one_in_sample",
               "gradcam_paired")


@pytest.mark.artifacts
def test_committed_intervals_are_at_least_as_wide_as_an_independent_recomputation(card):
    rows = {c.row: c for c in registry.CLAIMS}
    checked = 0
    for r in card.itertuples():
        c = rows[r.row]
        if c.measure not in INDEPENDENT:
            continue
        y = _per_image(c, REPO / "results" / c.scale)
        mean, low, high = anova_interval(y)
        assert r.ours == pytest.approx(mean, abs=1e-4), r.row
        assert r.ci_high - r.ci_low >= 0.97 * (high - low), f"{r.row}: narrower than a crossed ANOVA interval"
        if c.rule.decide(low, high, r.paper_value) not in DECIDED:
            assert r.verdict not in DECIDED, f"{r.row} claims {r.verdict}; the independent interval cannot"
        checked += 1
    assert checked >= 12


def _write_frontier(root: Path, latency: dict, macs: dict):
    """The meso sweep's frontier.csv and latency_rounds.csv: `latency[key]` ms per image (every round alike),
    `macs[key]` training MACs."""
    pd.DataFrame({"key": list(latency), "latency_ms": list(latency.values()),
                  "training_macs": [macs[k] for k in latency]}).to_csv(root / "frontier.csv", index=False)
    pd.DataFrame([{"round": r, "key": k, "ms_per_image": v, "batch_size": 16} for k, v in latency.items()
                  for r in range(10)]).to_csv(root / "latency_rounds.csv", index=False)
    pd.DataFrame({"image": range(40), "source": np.arange(40) // 4}).to_csv(root / "val_sources.csv", index=False)


def test_frontier_known_answer_and_the_bracketed_gate(tmp_path):
    """The 16x16 family at 60% and 80% top-1 (latency 1 and 4 ms), (a) at 65% and 2 ms: the family reads 70%
    at (a)'s latency (halfway on log latency), so +5 pp; with (a) slower than every family member the row is
    not testable (no extrapolation). Training compute the same way."""
    family = MESO_FAMILIES["16x16 stem, 3 stages"]
    shares = dict(zip(family, (0.6, 0.8, 0.8, 0.8)))
    lab = _write_lab(tmp_path, {**shares, "meso_fig2_a": 0.65}, images=40)
    lat = dict(zip(family, (1.0, 4.0, 8.0, 16.0)))
    _write_frontier(lab, {**lat, "meso_fig2_a": 2.0}, {**{k: 10 * v for k, v in lat.items()}, "meso_fig2_a": 20.0})
    t = ResultTables(None, lab, "meso")
    row = _row("shvit_fig2_frontier_latency", "meso")
    est = sc._frontier(t, **row.params).ours
    assert est.value == pytest.approx(5.0) and est.per_replicate == pytest.approx((5.0,) * 3)
    assert "clustered in 10 source digits" in est.method and "10 timing rounds" in est.method
    assert sc.check_preconditions(row, t)[0]
    compute = sc._frontier(t, **_row("shvit_fig2_frontier_compute", "meso").params).ours
    assert compute.value == pytest.approx(5.0)
    _write_frontier(lab, {**lat, "meso_fig2_a": 32.0}, {**{k: 10 * v for k, v in lat.items()}, "meso_fig2_a": 20.0})
    t = ResultTables(None, lab, "meso")
    ok, said = sc.check_preconditions(row, t)
    assert not ok and "within the family's 1-16" in said
    assert math.isnan(sc._frontier(t, **row.params).ours.value)
