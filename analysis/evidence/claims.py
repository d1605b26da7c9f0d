"""The claim scorecard: which of the two papers' findings our measurements reproduce.

Each `Claim` names the paper, the figure or table, the statement, the metric that tests it, and
its verdict rule (`evidence.verdicts`), all written here before any number is read. Its
`measure` reads the lab's tables (the notebooks' `results/`, the micro suite's `results/micro/`,
the papers' numbers in `core.reference`) and returns our value with a 95% interval
(`evidence.intervals`), the paper's value of the same metric where the paper gives one, and the
scale and weights it was measured at. `scorecard()` applies the rules: one row per claim.

A claim about spatial detail (what a 16x16 stem keeps, where Grad-CAM points) is only decidable
where the 16x16 stem's token grid is at least `MIN_GRID` x `MIN_GRID`: at micro scale (48 px,
3x3) its verdict is inconclusive whatever the interval says.

    >>> scorecard()                     # DataFrame, SCORECARD_COLUMNS
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from shvit import get_config

from ..core.errors import UserError, not_a_command
from ..core.paths import PathLike, meso_root, micro_root, project_root
from ..core.reference import load_reference
from ..core.tables import read_csv
from ..lab.cache import table_path
from ..lab.recipes import recipe
from ..lab.replicates import correct_matrix, removed_correct, similarity_array, top1_difference
from .intervals import Estimate, bootstrap, exact, log_ratio_interval, proportion_difference, t_interval
from .verdicts import Direction, Equivalence, verdict

__all__ = ["Claim", "CLAIMS", "scorecard", "fig2_speed_rounds", "memory_bound_rounds", "SCORECARD_COLUMNS", "MIN_GRID",
           "FIG2_SPEED_TABLE", "MEMORY_BOUND_TABLE", "EFFICIENTVIT_SIZES_TABLE", "MULTI_HEAD_MODELS"]

SCORECARD_COLUMNS = ["claim", "paper", "where", "title", "statement", "metric", "paper_value", "ours", "ci_low",
                     "ci_high",
                     "interval", "rule", "scale", "weights", "decidable", "verdict", "note"]
MIN_GRID = 7            # token grid side a spatial claim needs (the paper's last stage at 224 px is 7x7 / 4x4)
FIG2_SPEED_TABLE = "02_macro_design_rounds_cpu.csv"  # interleaved timing rounds of Fig. 2 (a) and (b)
MEMORY_BOUND_TABLE = "06_runtime_breakdown_rounds_cpu.csv"  # memory-bound runtime share per profiling round
EFFICIENTVIT_SIZES_TABLE = "08_efficientvit_variants.csv"  # `cost.variant_table.efficientvit_variant_table()`
MULTI_HEAD_MODELS = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224")  # EfficientViT Fig. 2's profiles


@dataclass(frozen=True)
class Measurement:
    ours: Estimate
    paper: float            # the paper's value of the same metric; NaN where the paper states only a direction
    scale: str
    weights: str
    decidable: bool = True
    note: str = ""


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    where: str
    title: str          # a few words, for the figure
    statement: str
    metric: str
    rule: object
    measure: Callable[["_Tables"], Measurement]
    scales: tuple[str, ...] = ("full",)   # trained-here claims: each lab scale whose tables exist ("micro", "meso")


class _Tables:
    """Reads the tables a claim needs: `results/<name>` of the output folder, else the project's; for a
    lab scale, its suite's tables (micro: `results/micro`, meso: `results/meso`, keys prefixed `meso_`)."""

    def __init__(self, results: Optional[PathLike], lab: Optional[PathLike] = None, scale: str = "micro"):
        self.results = Path(results) if results else project_root() / "results"
        self.scale = scale
        self.lab = (micro_root if scale == "micro" else meso_root)(lab)

    def key(self, name: str) -> str:
        """The recipe key of the micro model `name` at this scale."""
        return name if self.scale == "micro" else f"{self.scale}_{name}"

    def result(self, name: str) -> pd.DataFrame:
        for path in (self.results / name, project_root() / "results" / name):
            if path.is_file():
                return read_csv(path)
        raise UserError(f"the scorecard needs results/{name}: run the notebook that writes it first")

    def lab_table(self, name: str) -> pd.DataFrame:
        path = table_path(name, self.lab)
        if not path.is_file():
            how = "--all --seeds" if self.scale == "micro" else f"--{self.scale}"
            raise UserError(f"the scorecard needs {path}: run `python -m analysis.ablations {how}` first")
        return read_csv(path)


# ---- lab-scale data ------------------------------------------------------------------------------------------

def _top1_difference(t: _Tables, a: str, b: str) -> Estimate:
    return top1_difference(t.lab_table("predictions"), t.key(a), t.key(b))


def _similarity(t: _Tables, key: str) -> np.ndarray:
    return similarity_array(t.lab_table("head_similarity_images"), t.key(key))


def _grid(t: _Tables) -> int:
    """Token grid side after the 16x16 stem at this scale."""
    r = recipe(t.key("fig2_b"))
    return r.resolution // get_config(r.model).stem_stride


def _lab_scale(t: _Tables) -> str:
    return f"{t.scale} ({recipe(t.key('fig2_b')).resolution} px cluttered digits)"


def _seeds(t: _Tables) -> str:
    return f"trained here ({t.lab_table('predictions').seed.nunique()} seeds)"


def fig2_speed_rounds(rounds: int = 7, *, batch_size: int = 4, resolution: int = 224, passes: int = 3) -> pd.DataFrame:
    """Seconds per forward pass of Fig. 2's (a) and (b) (random weights, CPU, one thread), in
    `rounds` interleaved rounds (each the best of `passes` passes), so that load drift on a shared
    machine hits both designs of a round alike: the data of the `shvit_fig2_speed` claim."""
    import time

    import torch

    from ..core.models import create_model
    from ..core.runtime import cpu_threads

    models = {d: create_model(f"shvitlab_fig2_{k}", "random") for d, k in (("(a)", "a"), ("(b)", "b"))}
    x = torch.randn(batch_size, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    rows = []
    with cpu_threads(1), torch.inference_mode():
        for m in models.values():
            m(x)  # warm-up
        for r in range(rounds):
            for design, m in models.items():
                times = []
                for _ in range(passes):
                    t0 = time.perf_counter()
                    m(x)
                    times.append(time.perf_counter() - t0)
                rows.append({"round": r, "design": design, "model": f"shvitlab_fig2_{design[1]}", "seconds": min(times),
                             "batch_size": batch_size, "resolution": resolution, "threads": 1})
    return pd.DataFrame(rows)


def memory_bound_rounds(rounds: int = 5, *, models=MULTI_HEAD_MODELS + ("efficientvit_m4",),
                        batch_size: int = 4) -> pd.DataFrame:
    """Share of CPU runtime (one thread, torch.profiler) in memory-bound operator categories
    (`cost.breakdown`), per model and interleaved round: the data of the `effvit_fig2_memory_bound` claim."""
    from ..core.runtime import cpu_threads
    from ..cost.breakdown import breakdown_table, memory_bound_shares

    frames = []
    with cpu_threads(1):
        for r in range(rounds):
            shares = memory_bound_shares(breakdown_table(models, batch_size=batch_size, repeats=1, progress=False))
            frames.append(shares.rename_axis("model").reset_index().assign(round=r, batch_size=batch_size, threads=1))
    return pd.concat(frames, ignore_index=True)[["round", "model", "runtime_share", "mem_bytes_share", "batch_size",
                                                 "threads"]]


# ---- the claims ---------------------------------------------------------------------------------------------

def _worst_size_error(t: _Tables, table: str, models: str) -> Estimate:
    """Largest |ours/paper - 1| (%) over a variant table's parameter and MAC counts."""
    worst = float(100 * t.result(table).rel_diff.abs().max())
    return exact(worst, f"deterministic count (fvcore MACs, parameters) of {models}")


def _table1_sizes(t: _Tables) -> Measurement:
    return Measurement(_worst_size_error(t, "00_shvit_variants.csv", "S1-S4"), 0.0, "full (224/256 px)",
                       "architecture only")


def _fig2_speed(t: _Tables) -> Measurement:
    r = t.result(FIG2_SPEED_TABLE)
    wide = r.pivot(index="round", columns="design", values="seconds")
    est = log_ratio_interval(wide["(a)"] / wide["(b)"], "interleaved timing rounds")
    row = r.iloc[0]
    return Measurement(est, math.nan, f"full ({int(row.resolution)} px), CPU 1 thread, batch {int(row.batch_size)}",
                       "random (speed does not depend on them)", note="host-specific timing")


def _fig2_accuracy(t: _Tables) -> Measurement:
    grid = _grid(t)
    return Measurement(_top1_difference(t, "fig2_b", "fig2_a"), math.nan, _lab_scale(t), _seeds(t),
                       decidable=grid >= MIN_GRID, note=f"16x16 stem leaves a {grid}x{grid} token grid")


def _fig3_paper_similarity() -> pd.DataFrame:
    return load_reference("shvit_fig3_deit_head_similarity")


def _late_minus_early(sim: np.ndarray) -> float:
    """Mean similarity of the last third of the layers minus the first third (pp); sim [..., layers]."""
    k = max(1, sim.shape[-1] // 3)
    return float(sim[..., -k:].mean() - sim[..., :k].mean())


def _fig3_late_layers(t: _Tables) -> Measurement:
    ref = _fig3_paper_similarity()
    paper = _late_minus_early(ref[ref.heads == 3].sort_values("layer").similarity_pct.to_numpy())
    est = bootstrap(_late_minus_early, _similarity(t, "deit_3h"), seeded=True)
    return Measurement(est, paper, _lab_scale(t) + ", DeiT-T-shaped, 6 layers", _seeds(t))


def _fig3_more_heads(t: _Tables) -> Measurement:
    ref = _fig3_paper_similarity()
    paper = float(ref[ref.heads == 3].similarity_pct.mean() - ref[ref.heads == 6].similarity_pct.mean())
    s3, s6 = _similarity(t, "deit_3h"), _similarity(t, "deit_6h")
    est = bootstrap(lambda a, b: float(a.mean() - b.mean()), s3, s6, seeded=True)
    return Measurement(est, paper, _lab_scale(t) + ", DeiT-T-shaped", _seeds(t),
                       note="the two models see the same val images")


def _fig3_remove_one(t: _Tables) -> Measurement:
    ref = _fig3_paper_similarity()
    paper = float(ref[ref.heads == 3].remove1_delta_pct.mean())
    predictions = t.lab_table("predictions")
    key = t.key("deit_3h")
    removed = removed_correct(t.lab_table("ablation_images"), predictions, key)   # [seeds, images, layers]
    est = bootstrap(lambda r, b: float(100 * (r.mean() - b.mean())), removed, correct_matrix(predictions, key),
                    seeded=True)
    return Measurement(est, paper, _lab_scale(t) + ", DeiT-T-shaped, 3 heads", _seeds(t),
                       note="per layer the head whose removal costs least; mean over layers")


def _table6_paper(row: int) -> float:
    return float(load_reference("shvit_table6_ablation").set_index("row").top1[row])


def _table6_accuracy(key: str, paper_row: int) -> Callable[[_Tables], Measurement]:
    def measure(t: _Tables) -> Measurement:
        paper = _table6_paper(4) - _table6_paper(paper_row)
        return Measurement(_top1_difference(t, "fig2_b", key), paper, _lab_scale(t), _seeds(t),
                           note="SHViT design (ratio 1/4.67) minus the variant")
    return measure


def _table6_speed(t: _Tables) -> Measurement:
    runs = t.result("05_single_head_throughput.csv")
    cpu = runs[runs.runtime == "cpu"].pivot(index="round", columns="model", values="images_per_s")
    est = log_ratio_interval(cpu["shvitlab_t6_ratio4_67"] / cpu["shvitlab_t6_mhsa"], "interleaved throughput rounds")
    ref = load_reference("shvit_table6_ablation").set_index("row")
    paper = float(ref.cpu_img_s[4] / ref.cpu_img_s[1])
    return Measurement(est, paper, "full (224 px), CPU 1 thread, batch 16", "random (speed does not depend on them)",
                       note="host-specific timing")


def _table2_ranking(t: _Tables) -> Measurement:
    from scipy.stats import spearmanr

    s = t.result("01_speed_accuracy.csv")
    ours, paper = s.ours_img_s.to_numpy(), s.paper_cpu_img_s.to_numpy()
    est = bootstrap(lambda a, b: float(spearmanr(a, b).statistic), ours, paper, unit="models")
    return Measurement(est, 1.0, "full (224/256 px), CPU 1 thread", "random (speed does not depend on them)",
                       note=f"{len(s)} Table 2 models timm provides")


def _efficientvit_sizes(t: _Tables) -> Measurement:
    return Measurement(_worst_size_error(t, EFFICIENTVIT_SIZES_TABLE, "M0-M5"), 0.0, "full (224 px)",
                       "architecture only", note="the paper rounds parameters to 0.1 M (2.2% for M0)")


def _memory_bound(t: _Tables) -> Measurement:
    rounds = t.result(MEMORY_BOUND_TABLE)
    r = rounds.pivot(index="round", columns="model", values="runtime_share")
    diff = 100 * (r[list(MULTI_HEAD_MODELS)].mean(axis=1) - r["efficientvit_m4"])
    est = t_interval(diff, "interleaved profiling rounds")
    batch = int(rounds.batch_size.iloc[0])
    return Measurement(est, math.nan, f"full (224 px), CPU 1 thread, batch {batch}",
                       "random (speed does not depend on them)", note="host-specific timing")


def _gradcam(t: _Tables) -> Measurement:
    g = t.lab_table("gradcam").set_index("stem_stride")
    n = int(g.images[16])
    est = proportion_difference(g.pointing_game[16] / 100, g.pointing_game[4] / 100, n, int(g.images[4]))
    est = Estimate(100 * est.value, 100 * est.low, 100 * est.high, est.method)
    side = int(g.map_side[16])
    return Measurement(est, math.nan, _lab_scale(t), "trained here (seed 0)", decidable=side >= MIN_GRID,
                       note=f"Grad-CAM maps of {side}x{side}")


CLAIMS: tuple[Claim, ...] = (
    Claim("shvit_t1_sizes", "SHViT", "Table 1", "S1-S4 sizes",
          "S1-S4 have 6.3/11.4/14.2/16.5 M parameters and 241/366/601/986 M MACs",
          "largest |ours/paper - 1| over the 8 numbers (%)", Equivalence(2.0), _table1_sizes),
    Claim("shvit_fig2_speed", "SHViT", "Fig. 2", "16x16 stem speed",
          "a 16x16 stem with 3 stages (b) is faster than a 4x4 stem with 4 stages (a)",
          "speed-up of (b) over (a) (x)", Direction(+1, 1.0), _fig2_speed),
    Claim("shvit_fig2_accuracy", "SHViT", "Fig. 2", "16x16 stem accuracy",
          "the 16x16 stem's speed costs little accuracy (under 1 point)",
          "top-1 (b) minus (a) (pp)", Direction(+1, -1.0), _fig2_accuracy, scales=("micro", "meso")),
    Claim("shvit_fig3_late_layers", "SHViT", "Fig. 3", "late layers more similar",
          "heads in later layers are more similar than in early layers",
          "head similarity, last third of layers minus first third (pp)", Direction(+1), _fig3_late_layers,
          scales=("micro", "meso")),
    Claim("shvit_fig3_more_heads", "SHViT", "Fig. 3", "more heads, less similar",
          "with 6 heads, heads are less similar than with 3",
          "mean head similarity, 3 heads minus 6 heads (pp)", Direction(+1), _fig3_more_heads,
          scales=("micro", "meso")),
    Claim("shvit_fig3_remove_one", "SHViT", "Fig. 3", "removing a head",
          "removing one (well-chosen) head costs little accuracy (under 1 point)",
          "top-1 with the least useful head removed minus intact, mean over layers (pp)", Direction(+1, -1.0),
          _fig3_remove_one, scales=("micro", "meso")),
    Claim("shvit_t6_mhsa_accuracy", "SHViT", "Table 6", "SHSA vs MHSA accuracy",
          "single-head attention is as accurate as multi-head (within 1 point)",
          "top-1 SHSA minus MHSA (pp)", Equivalence(1.0), _table6_accuracy("t6_mhsa", 1), scales=("micro", "meso")),
    Claim("shvit_t6_mhsa_speed", "SHViT", "Table 6", "SHSA vs MHSA speed",
          "single-head attention is faster than multi-head",
          "CPU throughput SHSA / MHSA (x)", Direction(+1, 1.0), _table6_speed),
    Claim("shvit_t6_attention_helps", "SHViT", "Table 6", "attention helps",
          "removing the attention (depthwise conv only) costs accuracy",
          "top-1 SHSA minus no attention (pp)", Direction(+1), _table6_accuracy("t6_none", 2),
          scales=("micro", "meso")),
    Claim("shvit_t6_partial_ratio", "SHViT", "Table 6 / Fig. 6", "partial ratio 1/4.67",
          "partial ratio 1/4.67 is as accurate as 1/2 (within 1 point) at lower cost",
          "top-1 ratio 1/4.67 minus 1/2 (pp)", Equivalence(1.0), _table6_accuracy("t6_ratio2", 5), scales=("micro",)),
    Claim("shvit_t2_ranking", "SHViT", "Table 2", "CPU speed ranking",
          "models rank by CPU throughput as in the paper (Spearman rho above 0.8)",
          "Spearman rho, our vs the paper's CPU throughput", Direction(+1, 0.8), _table2_ranking),
    Claim("effvit_sizes", "EfficientViT", "Table 1 / model zoo", "M0-M5 sizes",
          "M0-M5 have 2.3/3.0/4.2/6.9/8.8/12.4 M parameters and 79/167/201/263/299/522 M MACs",
          "largest |ours/paper - 1| over the 12 numbers (%)", Equivalence(5.0), _efficientvit_sizes),
    Claim("effvit_fig2_memory_bound", "EfficientViT", "Fig. 2", "memory-bound share",
          "multi-head ViTs (DeiT-T, Swin-T) spend more of their runtime in memory-bound operations than EfficientViT",
          "memory-bound share of CPU runtime, mean of DeiT-T and Swin-T minus EfficientViT-M4 (pp)", Direction(+1),
          _memory_bound),
    Claim("shvit_gradcam_stem", "SHViT", "Sec. 3 (Grad-CAM)", "Grad-CAM localisation",
          "the 16x16 stem localises objects no worse than the 4x4 stem (within 5 points)",
          "pointing game 16x16 minus 4x4 stem (pp)", Direction(+1, -5.0), _gradcam, scales=("micro", "meso")),
)


def scorecard(claims=CLAIMS, *, results: Optional[PathLike] = None, micro: Optional[PathLike] = None,
              meso: Optional[PathLike] = None) -> pd.DataFrame:
    """One row per claim and scale (`SCORECARD_COLUMNS`): the paper's value, ours with its 95% interval,
    the scale and weights, and the verdict of the claim's rule. Trained-here claims get a row per lab
    scale: micro always, meso where its suite's tables exist (`python -m analysis.ablations --meso`)."""
    tables = {"full": _Tables(results), "micro": _Tables(results, micro, "micro"),
              "meso": _Tables(results, meso, "meso")}
    rows = []
    for c in claims:
        for scale in c.scales:
            t = tables[scale]
            if scale == "meso" and not table_path("predictions", t.lab).is_file():
                continue
            m = c.measure(t)
            rows.append({"claim": c.id, "paper": c.paper, "where": c.where, "title": c.title,
                         "statement": c.statement, "metric": c.metric, "paper_value": m.paper, "ours": m.ours.value,
                         "ci_low": m.ours.low, "ci_high": m.ours.high, "interval": m.ours.method,
                         "rule": c.rule.band(m.paper), "scale": m.scale, "weights": m.weights,
                         "decidable": m.decidable,
                         "verdict": verdict(c.rule, m.ours.low, m.ours.high, m.paper, m.decidable), "note": m.note})
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
