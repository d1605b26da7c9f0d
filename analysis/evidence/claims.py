"""The claim scorecard: which of the two papers' findings our measurements reproduce.

Every row is registered in `registry.toml` (claim, metric, measurement and its parameters, rule,
margin, preconditions, layers) before its numbers exist, or labelled post hoc there; this module
only measures and applies what the registry says. A row's `measure` (one of `MEASURES`) reads the
lab's tables (the notebooks' `results/`, the lab suites' `results/micro|meso/`, the papers' numbers
in `core.reference`) and returns our value with a 95% interval (`core.intervals`: seeds as a
random effect for trained-here numbers), the paper's value of the same metric where the paper gives
one, and what it was measured on. `scorecard()` then checks the row's preconditions, states its
power (`evidence.power`), corrects the findings for multiplicity (Holm) and applies the rule
(`evidence.verdicts`). Each row names the commit that registered it and the one that measured it.

    >>> scorecard()                     # DataFrame, SCORECARD_COLUMNS
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd

from shvit import get_config

from ..core.errors import UserError, not_a_command
from ..core.paths import PathLike
from ..core.reference import load_reference
from ..core.runtime import measured_on_text
from ..cost.breakdown import MULTI_HEAD_MODELS
from ..core.intervals import Estimate, bootstrap, exact, log_ratio_interval, proportion_difference, t_interval
from ..lab.cache import table_path
from ..lab.recipes import MESO_FAMILIES, recipe
from ..lab.replicates import (correct_matrix, crossfit_remove_one, removed_all_heads, removed_correct,
                              similarity_array)
from .power import detectable_effect, replicates_needed
from .provenance import is_prospective, measured_commit
from .registry import CLAIMS, Claim
from .result_tables import ResultTables
from .verdicts import verdict

__all__ = ["MEASURES", "scorecard", "check_preconditions",
           "attention_grid",
           "SCORECARD_COLUMNS", "FIG2_SPEED_TABLE", "MEMORY_BOUND_TABLE",
           "EFFICIENTVIT_SIZES_TABLE"]

SCORECARD_COLUMNS = ["row", "claim", "paper", "where", "title", "statement", "kind", "metric", "paper_value", "ours",
                     "ci_low", "ci_high", "se", "df", "interval", "per_replicate", "replicates", "replicate_unit", "p_value",
                     "p_holm", "detectable_effect", "target_effect", "replicates_needed", "rule", "boundary_from",
                     "scale", "weights", "measured_on", "testable", "precondition", "verdict", "registered",
                     "measured", "prospective", "note"]
FIG2_SPEED_TABLE = "02_macro_design_rounds_cpu.csv"  # interleaved timing rounds of Fig. 2 (a) and (b)
MEMORY_BOUND_TABLE = "06_runtime_breakdown_rounds_cpu.csv"  # memory-bound runtime share per profiling round
EFFICIENTVIT_SIZES_TABLE = "08_efficientvit_variants.csv"  # `cost.variant_table.efficientvit_variant_table()`


@dataclass(frozen=True)
class Measurement:
    ours: Estimate
    paper: float            # the paper's value of the same metric; NaN where the paper states only a direction
    scale: str
    weights: str
    measured_on: str = ""
    note: str = ""


# ---- preconditions ------------------------------------------------------------------------------------------

def _stem_grid(t: ResultTables) -> int:
    """Token grid side after the 16x16 stem at this scale."""
    r = recipe(t.key("fig2_b"))
    return r.resolution // get_config(r.model).stem_stride


def attention_grid(key: str) -> int:
    """Token grid side that the first attention layer of recipe `key` sees (0: no attention)."""
    r = recipe(key)
    if r.model.startswith("shvitlab_"):
        cfg = get_config(r.model)
        sides = cfg.stage_resolutions(r.resolution)
        return next((s for s, m in zip(sides, cfg.mixers) if m != "conv"), 0)
    return r.resolution // int(r.model_kwargs.get("patch_size", 16))   # timm ViT: patch grid


def _mean_top1(t: ResultTables, name: str) -> float:
    return 100 * float(correct_matrix(t.lab_table("predictions"), t.key(name)).mean())


def check_preconditions(claim: Claim, t: ResultTables) -> tuple[bool, str]:
    """(testable, what was checked): every declared gate of `claim` at this scale."""
    gates = claim.preconditions
    if not gates or t.scale == "full":
        return True, ""
    said, ok = [], True
    models = [m for m in (claim.params.get("model"), claim.params.get("baseline")) if m]
    if "stem_grid" in gates:
        g = _stem_grid(t)
        ok &= g >= gates["stem_grid"]
        said.append(f"16x16 stem keeps {g}x{g} tokens (needs {gates['stem_grid']}x{gates['stem_grid']})")
    if "attention_grid" in gates:
        need = gates["attention_grid"]
        grids = {m: g for m in models if (g := attention_grid(t.key(m)))}   # models without attention: no gate
        ok &= all(g >= need for g in grids.values())
        said.append("first attention sees " + ", ".join(f"{g}x{g} ({m})" for m, g in grids.items())
                    + f" tokens (needs {need}x{need})")
    if gates.get("bracketed"):
        family, base, x = claim.params["family"], t.key(claim.params["baseline"]), claim.params["x"]
        xs = _frontier_x(t, x).reindex(MESO_FAMILIES[family])
        x0 = float(_frontier_x(t, x)[base])
        ok &= bool(xs.min() <= x0 <= xs.max())
        said.append(f"{base}'s {x} {x0:.4g} within the family's {xs.min():.4g}-{xs.max():.4g}")
    if "quality_floor" in gates:
        floor_key = gates["quality_floor"]
        floor = _mean_top1(t, floor_key)
        tops = {m: _mean_top1(t, m) for m in models}
        ok &= all(v >= floor for v in tops.values())
        said.append("top-1 " + ", ".join(f"{v:.1f}% ({m})" for m, v in tops.items())
                    + f" vs floor {floor:.1f}% ({floor_key})")
    return bool(ok), "; ".join(said)


# ---- the measurements -------------------------------------------------------------------------------------

def _lab_scale(t: ResultTables) -> str:
    return f"{t.scale} ({recipe(t.key('fig2_b')).resolution} px cluttered digits)"


def _seeds(t: ResultTables) -> str:
    return f"trained here ({t.lab_table('predictions').seed.nunique()} seeds)"


def _size_error(t: ResultTables, table: str, models: str, scale: str, note: str = "") -> Measurement:
    """Largest |ours/paper - 1| (%) over a variant table's parameter and MAC counts."""
    worst = float(100 * t.result(table).rel_diff.abs().max())
    return Measurement(exact(worst, f"deterministic count (fvcore MACs, parameters) of {models}"), 0.0, scale,
                       "architecture only", note=note)


def _fig2_speed(t: ResultTables) -> Measurement:
    r = t.result(FIG2_SPEED_TABLE)
    wide = r.pivot(index="round", columns="design", values="seconds")
    est = log_ratio_interval(wide["(a)"] / wide["(b)"], "interleaved timing rounds")
    row = r.iloc[0]
    return Measurement(est, math.nan, f"full ({int(row.resolution)} px)", "random (speed does not depend on them)",
                       f"{measured_on_text(r)}, batch {int(row.batch_size)} (paper: GPU)", "host-specific timing")


def _top1_difference(t: ResultTables, model: str, baseline: str, paper_row: Optional[int] = None) -> Measurement:
    paper = math.nan if paper_row is None else _table6_paper(4) - _table6_paper(paper_row)
    predictions = t.lab_table("predictions")
    est = t.seeded(lambda a, b: 100 * (a.mean() - b.mean()), correct_matrix(predictions, t.key(model)),
                   correct_matrix(predictions, t.key(baseline)))
    return Measurement(est, paper, _lab_scale(t), _seeds(t), "CPU (accuracy)",
                       "the two models see the same val images; seeds paired")


def _frontier_x(t: ResultTables, x: str) -> pd.Series:
    """Per model of the sweep, its point on the x axis: latency (ms per image, geometric mean over rounds) or
    training compute (MACs)."""
    return t.lab_table("frontier").set_index("key")[{"latency": "latency_ms", "training_macs": "training_macs"}[x]]


def _frontier(t: ResultTables, family: str, baseline: str, x: str) -> Measurement:
    from ..lab.frontier import matched_accuracy

    members, base = MESO_FAMILIES[family], t.key(baseline)
    predictions = t.lab_table("predictions")
    correct = {k: correct_matrix(predictions, k) for k in (*members, base)}
    if x == "latency":
        lat = t.lab_table("latency_rounds")
        xs = {k: lat[lat.key == k].sort_values("round").ms_per_image.to_numpy() for k in correct}
        on = f"{measured_on_text(lat)}, batch {int(lat.batch_size.iloc[0])}, {lat['round'].nunique()} interleaved rounds"
    else:
        xs = {k: np.array([v]) for k, v in _frontier_x(t, x).items() if k in correct}
        on = "forward MACs x images seen (deterministic)"
    est = matched_accuracy(correct, xs, members, base, clusters=t.clusters(correct[base].shape[1]),
                           what={"latency": "latency", "training_macs": "training compute"}[x])
    return Measurement(est, math.nan, _lab_scale(t), _seeds(t), on,
                       f"{family} family: {', '.join(members)}; each seed's curve interpolated at {base}'s {x}")


def _fig3_paper_similarity() -> pd.DataFrame:
    return load_reference("shvit_fig3_deit_head_similarity")


def _late_minus_early(sim: np.ndarray) -> float:
    """Mean similarity of the last third of the layers minus the first third (pp); sim [..., layers]."""
    k = max(1, sim.shape[-1] // 3)
    return float(sim[..., -k:].mean() - sim[..., :k].mean())


def _similarity(t: ResultTables, name: str) -> np.ndarray:
    return similarity_array(t.lab_table("head_similarity_images"), t.key(name))


def _late_layers(t: ResultTables, model: str) -> Measurement:
    ref = _fig3_paper_similarity()
    paper = _late_minus_early(ref[ref.heads == 3].sort_values("layer").similarity_pct.to_numpy())
    return Measurement(t.seeded(_late_minus_early, _similarity(t, model)), paper,
                       _lab_scale(t) + ", DeiT-T-shaped, 6 layers", _seeds(t), "CPU")


def _similarity_difference(t: ResultTables, model: str, baseline: str) -> Measurement:
    ref = _fig3_paper_similarity()
    paper = float(ref[ref.heads == 3].similarity_pct.mean() - ref[ref.heads == 6].similarity_pct.mean())
    est = t.seeded(lambda a, b: float(a.mean() - b.mean()), _similarity(t, model), _similarity(t, baseline))
    return Measurement(est, paper, _lab_scale(t) + ", DeiT-T-shaped", _seeds(t), "CPU",
                       "the two models see the same val images; seeds paired")


def _remove_one_paper() -> float:
    ref = _fig3_paper_similarity()
    return float(ref[ref.heads == 3].remove1_delta_pct.mean())


def _remove_one_in_sample(t: ResultTables, model: str) -> Measurement:
    predictions = t.lab_table("predictions")
    key = t.key(model)
    removed = removed_correct(t.lab_table("ablation_images"), predictions, key)   # [seeds, images, layers]
    est = t.seeded(lambda r, b: float(100 * (r.mean() - b.mean())), removed, correct_matrix(predictions, key))
    return Measurement(est, _remove_one_paper(), _lab_scale(t) + ", DeiT-T-shaped, 3 heads", _seeds(t), "CPU",
                       "per layer the head whose removal costs least on the images it is scored on; mean over layers")


def _remove_one_crossfit(t: ResultTables, model: str, folds: int = 2, split_seed: int = 0) -> Measurement:
    removed, base = removed_all_heads(t.lab_table("ablation_heads_images"), t.key(model))   # [s, i, l, h], [s, i]
    fold = np.broadcast_to(np.random.default_rng(split_seed).permutation(base.shape[1]) % folds, base.shape)
    est = t.seeded(lambda r, b, f: crossfit_remove_one(r, b, f, folds), removed, base, fold)
    return Measurement(est, _remove_one_paper(), _lab_scale(t) + ", DeiT-T-shaped, 3 heads",
                       f"trained here ({removed.shape[0]} seeds)", "CPU",
                       f"per layer the head chosen on {folds - 1} of {folds} folds of the val images, scored on the "
                       "other (cross-fitted; the choice is redone in every bootstrap resample); mean over layers")


def _table6_paper(row: int) -> float:
    return float(load_reference("shvit_table6_ablation").set_index("row").top1[row])


def _table6_speed(t: ResultTables) -> Measurement:
    runs = t.result("05_single_head_throughput.csv")
    cpu = runs[runs.runtime == "cpu"].pivot(index="round", columns="model", values="images_per_s")
    est = log_ratio_interval(cpu["shvitlab_t6_ratio4_67"] / cpu["shvitlab_t6_mhsa"], "interleaved throughput rounds")
    ref = load_reference("shvit_table6_ablation").set_index("row")
    paper = float(ref.cpu_img_s[4] / ref.cpu_img_s[1])
    return Measurement(est, paper, "full (224 px)", "random (speed does not depend on them)",
                       f"{measured_on_text(runs[runs.runtime == 'cpu'])}, batch {int(runs.batch_size.iloc[0])} "
                       "(paper: CPU, 1 thread, batch 16)", "host-specific timing")


def _table2_ranking(t: ResultTables) -> Measurement:
    from scipy.stats import spearmanr

    s = t.result("01_speed_accuracy.csv")
    ours, paper = s.ours_img_s.to_numpy(), s.paper_cpu_img_s.to_numpy()
    est = bootstrap(lambda a, b: float(spearmanr(a, b).statistic), ours, paper, unit="models")
    return Measurement(est, 1.0, "full (224/256 px)", "random (speed does not depend on them)",
                       f"{measured_on_text(s)} (paper: CPU, 1 thread)", f"{len(s)} Table 2 models timm provides")


def _memory_bound(t: ResultTables) -> Measurement:
    rounds = t.result(MEMORY_BOUND_TABLE)
    r = rounds.pivot(index="round", columns="model", values="runtime_share")
    diff = 100 * (r[list(MULTI_HEAD_MODELS)].mean(axis=1) - r["efficientvit_m4"])
    est = t_interval(diff, "interleaved profiling rounds")
    batch = int(rounds.batch_size.iloc[0])
    return Measurement(est, math.nan, "full (224 px)", "random (speed does not depend on them)",
                       f"{measured_on_text(rounds)}, batch {batch} (paper: GPU)", "host-specific timing")


def _gradcam_seed0(t: ResultTables) -> Measurement:
    g = t.lab_table("gradcam").set_index("stem_stride")
    n = int(g.images[16])
    est = proportion_difference(g.pointing_game[16] / 100, g.pointing_game[4] / 100, n, int(g.images[4])).scaled(100)
    side = int(g.map_side[16])
    return Measurement(est, math.nan, _lab_scale(t), "trained here (seed 0)", "CPU",
                       f"Grad-CAM maps of {side}x{side} ({g.layer[4]} vs {g.layer[16]}); one seed, unpaired interval")


def _gradcam_paired(t: ResultTables, model: str, layer: str, baseline: str, baseline_layer: str) -> Measurement:
    g = t.lab_table("gradcam_images")

    def hits(name: str, at: str) -> tuple[np.ndarray, int]:
        h = g[(g.key == t.key(name)) & (g.layer == at)].sort_values(["seed", "image"])
        if h.empty:
            raise UserError(f"gradcam_images has no {t.key(name)} at {at}: run `python -m analysis.ablations "
                            f"--{t.scale}` first")
        return h.hit.to_numpy(float).reshape(h.seed.nunique(), -1), int(h.map_side.iloc[0])

    (b, side_b), (a, side_a) = hits(model, layer), hits(baseline, baseline_layer)
    est = t.seeded(lambda x, y: float(100 * (x.mean() - y.mean())), b, a)
    return Measurement(est, math.nan, _lab_scale(t), f"trained here ({b.shape[0]} seeds)", "CPU",
                       f"Grad-CAM of {model} at {layer} ({side_b}x{side_b}) vs {baseline} at {baseline_layer} "
                       f"({side_a}x{side_a}); paired per image and seed")


MEASURES: dict[str, Callable[..., Measurement]] = {
    "size_error": _size_error, "table2_ranking": _table2_ranking, "fig2_speed": _fig2_speed,
    "top1_difference": _top1_difference, "late_minus_early": _late_layers,
    "similarity_difference": _similarity_difference, "remove_one_in_sample": _remove_one_in_sample,
    "remove_one_crossfit": _remove_one_crossfit, "table6_speed": _table6_speed, "memory_bound": _memory_bound,
    "gradcam_seed0": _gradcam_seed0, "gradcam_paired": _gradcam_paired, "frontier": _frontier,
}



def _fmt(values) -> str:
    return ";".join(f"{v:.6g}" for v in values)


def scorecard(claims=CLAIMS, *, results: Optional[PathLike] = None, micro: Optional[PathLike] = None,
              meso: Optional[PathLike] = None) -> pd.DataFrame:
    """One row per registered row (`SCORECARD_COLUMNS`): the paper's value, ours with its 95% interval and
    per-seed (or per-round) values, power, Holm-adjusted p-value, preconditions, verdict, and the commits
    that registered and measured it. Meso rows appear where the meso suite's tables exist."""
    from statsmodels.stats.multitest import multipletests

    roots = {"micro": micro, "meso": meso}
    rows, measured = [], []
    for c in claims:
        if c.measure not in MEASURES:
            raise UserError(f"{c.row}: unknown measure {c.measure!r} (known: {', '.join(MEASURES)})")
        t = ResultTables(results, roots.get(c.scale), c.scale)
        if c.scale == "meso" and not table_path("predictions", t.lab).is_file():
            continue
        testable, checked = check_preconditions(c, t)
        m = MEASURES[c.measure](t, **c.params)
        target = c.rule.target(m.paper)
        mde = detectable_effect(m.ours)
        rows.append({"row": c.row, "claim": c.id, "paper": c.paper, "where": c.where, "title": c.title,
                     "statement": c.statement, "kind": c.kind, "metric": c.metric, "paper_value": m.paper,
                     "ours": m.ours.value, "ci_low": m.ours.low, "ci_high": m.ours.high, "se": m.ours.se, "df": m.ours.df,
                     "interval": m.ours.method,
                     "per_replicate": _fmt(m.ours.per_replicate), "replicates": m.ours.replicates,
                     "replicate_unit": m.ours.replicate_unit,
                     "detectable_effect": math.exp(mde) if c.rule.log and math.isfinite(mde) else mde,
                     "target_effect": math.exp(target) if c.rule.log and math.isfinite(target) else target,
                     "replicates_needed": replicates_needed(m.ours, target), "rule": c.rule.band(m.paper),
                     "boundary_from": c.boundary_from, "scale": m.scale, "weights": m.weights,
                     "measured_on": m.measured_on, "testable": testable, "precondition": checked,
                     "registered": c.registered, "note": m.note})
        measured.append((c, m, testable, mde))
        rows[-1]["measured"] = measured_commit(t.read)
        rows[-1]["prospective"] = is_prospective(c.registered, rows[-1]["measured"])
    family = [i for i, (c, m, ok, _) in enumerate(measured) if c.kind == "finding" and ok and m.ours.stochastic]
    p = {i: measured[i][0].rule.test(measured[i][1].ours)[0] for i in family}
    adjusted = dict(zip(family, multipletests([p[i] for i in family], method="holm")[1])) if family else {}
    for i, (c, m, ok, mde) in enumerate(measured):
        rows[i]["p_value"] = p.get(i, math.nan)
        rows[i]["p_holm"] = adjusted.get(i, math.nan)
        rows[i]["verdict"] = verdict(c.rule, m.ours, m.paper, ok, adjusted.get(i), mde)
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
