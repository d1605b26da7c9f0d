"""SHViT Table 6 / Fig. 6: single-head designs timed at full scale, beside the paper and micro accuracy.

    >>> runs = throughput_rounds(TABLE6_MODELS + FIG6_MODELS, ["cpu", "onnx"], window_s=1.5)
    >>> designs = paper_designs()
    >>> speed = speed_table(runs, designs)                  # ours / paper throughput, relative to SHViT
    >>> accuracy = accuracy_table(designs, ablations.single_head())   # paper vs micro top-1 deltas
    >>> print(" ".join(speed_sentences(speed)))              # what the intervals let us say, from the numbers

Throughput is compared *relative to the SHViT design* of each experiment and runtime, since
absolute speeds depend on the machine: per design, the geometric mean over interleaved rounds of
its throughput divided by the SHViT design's in the same round, with a Student-t 95% interval on
the log ratios; accuracy as the top-1 change from that design.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence

import pandas as pd

from ..core.errors import not_a_command
from ..core.reference import load_reference
from ..cost.throughput import model_throughput
from ..core.intervals import Estimate, log_ratio_interval
from .replicates import top1_difference

__all__ = ["TABLE6_MODELS", "FIG6_MODELS", "paper_designs", "throughput_rounds", "speed_table", "accuracy_table",
           "relative_speed", "speed_sentences"]

# Full-size models in the paper's row order (Table 6 rows 1-5; Fig. 6 bottleneck, full, partial).
TABLE6_MODELS = ["shvitlab_t6_mhsa", "shvitlab_t6_none", "shvitlab_t6_ratio8", "shvitlab_t6_ratio4_67",
                 "shvitlab_t6_ratio2"]
FIG6_MODELS = ["shvitlab_fig6_bottleneck", "shvitlab_fig6_full", "shvitlab_fig6_partial"]
_PAPER_RUNTIME = {"cpu_img_s": "cpu", "cpu_onnx_img_s": "onnx", "gpu_img_s": "cuda"}
_MICRO_EXPERIMENT = {"Table 6 (S3)": "table6", "Fig. 6 (S2)": "fig6"}
CLAIM_ROUNDS = 10  # interleaved rounds a speed claim needs; fewer still give an interval, flagged as too few
_RUNTIME_WORDS = {"cpu": "CPU (PyTorch)", "onnx": "CPU (ONNX Runtime)", "cuda": "GPU (PyTorch)"}


def paper_designs(table6: Sequence[str] = TABLE6_MODELS, fig6: Sequence[str] = FIG6_MODELS) -> pd.DataFrame:
    """The paper's rows (one per design, with its top-1 and throughputs), each tied to our model name."""
    return pd.concat([
        load_reference("shvit_table6_ablation").rename(columns={"variant": "design"}).assign(
            experiment="Table 6 (S3)", model=list(table6), baseline=lambda d: d.row == 4),
        load_reference("shvit_fig6_single_head_designs").assign(
            experiment="Fig. 6 (S2)", model=list(fig6), design=lambda d: d.design.str.split(" [(]", regex=True).str[0],
            baseline=lambda d: d.design.str.startswith("partial"))])


def throughput_rounds(models: Iterable[str], runtimes: Iterable[str], *, window_s: float, warmup_s: float = 0.5,
                      rounds: int = 3) -> pd.DataFrame:
    """`throughput` of every model on every runtime, `rounds` times interleaved (resists load drift)."""
    models, runtimes = list(models), list(runtimes)
    return pd.DataFrame([{**model_throughput(m, runtime=rt, window_s=window_s, warmup_s=warmup_s), "round": r}
                         for r in range(rounds) for m in models for rt in runtimes])


def relative_speed(runs: pd.DataFrame, model: str, baseline: str, runtime: str) -> Estimate:
    """Throughput of `model` relative to `baseline` on `runtime`, from `throughput_rounds`: the geometric mean
    over rounds of the per-round ratio, with a Student-t 95% interval on the log ratios
    (`core.intervals.log_ratio_interval`). A round counts when it timed both models; at least two must."""
    ratios = _round_ratios(runs, model, baseline, runtime)
    if len(ratios) < 2:
        raise ValueError(f"relative_speed: {model} vs {baseline} on {runtime} needs at least 2 rounds that timed "
                         f"both, got {len(ratios)}")
    return log_ratio_interval(ratios.to_numpy(), f"interleaved rounds ({runtime})")


def _round_ratios(runs: pd.DataFrame, model: str, baseline: str, runtime: str) -> pd.Series:
    """images/s of `model` over `baseline`'s in each round that timed both on `runtime`."""
    rounds = runs[runs.runtime == runtime].pivot(index="round", columns="model", values="images_per_s")
    if not {model, baseline} <= set(rounds.columns):
        return pd.Series(dtype=float)
    return (rounds[model] / rounds[baseline]).dropna()


def speed_table(runs: pd.DataFrame, designs: pd.DataFrame) -> pd.DataFrame:
    """Per model and runtime, joined to the paper's numbers: the median over rounds of the throughput and of its
    spread (`ours_img_s`, `ours_spread`), and the speed relative to the SHViT design of the same experiment and
    runtime: ours as `relative_speed` (`ours_rel`, its 95% interval `ours_rel_low` / `_high` over `rounds`
    rounds), the paper's as the ratio of its throughputs (`paper_rel`)."""
    speed = runs.groupby(["model", "runtime"], sort=False)[["images_per_s", "spread"]].median().reset_index()
    paper = designs.melt(id_vars=["model"], value_vars=list(_PAPER_RUNTIME), var_name="runtime",
                         value_name="paper_img_s").assign(runtime=lambda d: d.runtime.map(_PAPER_RUNTIME))
    table = (designs[["experiment", "design", "model", "baseline", "top1"]].rename(columns={"top1": "paper_top1"})
             .merge(speed[["model", "runtime", "images_per_s", "spread"]].rename(
                 columns={"images_per_s": "ours_img_s", "spread": "ours_spread"}), on="model")
             .merge(paper, on=["model", "runtime"], how="left"))
    base = table[table.baseline].set_index(["experiment", "runtime"])[["model", "paper_img_s"]]
    rel = table.merge(base, left_on=["experiment", "runtime"], right_index=True, how="left", suffixes=("", "_base"))
    pairs = list(zip(rel.model, rel.model_base, rel.runtime))
    estimates = [relative_speed(runs, *pair) for pair in pairs]
    table["ours_rel"] = [e.value for e in estimates]
    table["ours_rel_low"] = [e.low for e in estimates]
    table["ours_rel_high"] = [e.high for e in estimates]
    table["rounds"] = [len(_round_ratios(runs, *pair)) for pair in pairs]
    table["paper_rel"] = rel.paper_img_s / rel.paper_img_s_base
    return table


def speed_sentences(speed: pd.DataFrame) -> List[str]:
    """One sentence per experiment and runtime of `speed_table`, written from its numbers: each design's speed
    relative to the SHViT design with its interval (and the paper's ratio), then which designs this host
    finds faster or slower (interval entirely above or below 1) and which it does not order (interval
    containing 1). Designs are never ordered against each other, only against the SHViT design; fewer than
    `CLAIM_ROUNDS` rounds are named as too few."""
    sentences = []
    for (experiment, runtime), part in speed.groupby(["experiment", "runtime"], sort=False):
        base = part[part.baseline].design.iloc[0]
        rows = part[~part.baseline]
        if rows.empty:
            continue
        shown = "; ".join(f"{r.design} {_times(r.ours_rel)} [{r.ours_rel_low:.2f}, {r.ours_rel_high:.2f}]"
                          + ("" if pd.isna(r.paper_rel) else f" (paper {_times(r.paper_rel)})")
                          for r in rows.itertuples())
        faster = list(rows.design[rows.ours_rel_low > 1])
        slower = list(rows.design[rows.ours_rel_high < 1])
        unordered = list(rows.design[(rows.ours_rel_low <= 1) & (rows.ours_rel_high >= 1)])
        verdict = []
        if faster:
            verdict.append(f"faster here: {', '.join(faster)}")
        if slower:
            verdict.append(f"slower here: {', '.join(slower)}")
        if unordered:
            which = "every interval includes" if len(unordered) == len(rows) else \
                f"the intervals of {', '.join(unordered)} include"
            verdict.append(f"{which} 1, so this host does not order {'them' if len(unordered) > 1 else 'it'} "
                           f"against {base}")
        outside = [f"{r.design} ({_times(r.paper_rel)})" for r in rows.itertuples()
                   if not pd.isna(r.paper_rel) and not r.ours_rel_low <= r.paper_rel <= r.ours_rel_high]
        with_paper = rows.paper_rel.notna().sum()
        if with_paper:
            verdict.append(f"the paper's ratio lies outside our interval for {', '.join(outside)}" if outside else
                           "every paper ratio lies inside our interval")
        rounds = int(part.rounds.min())
        few = f", fewer than the {CLAIM_ROUNDS} a speed claim needs" if rounds < CLAIM_ROUNDS else ""
        sentences.append(f"{experiment} on {_RUNTIME_WORDS.get(runtime, runtime)}, speed relative to {base} "
                         f"(geometric mean [95% t-interval] of {rounds} interleaved rounds{few}): {shown}; "
                         + "; ".join(verdict) + ".")
    return sentences


def _times(x: float) -> str:
    return f"{x:.2f}x"


def accuracy_table(designs: pd.DataFrame, micro: pd.DataFrame,
                   predictions: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Paper top-1 beside micro top-1 (`ablations.single_head()`), each as a change from the SHViT design.

    With the replicates' `predictions` (`experiments.predictions_table()`), also the micro change as
    the mean over seeds with its 95% interval (`micro_delta_mean`, `_low`, `_high`; seeds and
    paired val images bootstrapped) and the number of seeds.
    """
    accuracy = designs[["experiment", "design", "model", "baseline", "top1"]].rename(columns={"top1": "paper_top1"})
    accuracy["micro_key"] = [k for e in _MICRO_EXPERIMENT.values() for k in micro[micro.experiment == e].key]
    accuracy = accuracy.merge(micro[["key", "val_top1", "partial_ratio"]].drop_duplicates("key").rename(
        columns={"key": "micro_key", "val_top1": "micro_top1"}), on="micro_key")
    base = accuracy[accuracy.baseline].set_index("experiment")[["paper_top1", "micro_top1"]]
    accuracy["paper_delta"] = accuracy.paper_top1 - accuracy.experiment.map(base.paper_top1)
    accuracy["micro_delta"] = accuracy.micro_top1 - accuracy.experiment.map(base.micro_top1)
    if predictions is not None:
        base_key = accuracy[accuracy.baseline].set_index("experiment").micro_key
        estimates = [top1_difference(predictions, key, base_key[e]) for key, e in zip(accuracy.micro_key,
                                                                                     accuracy.experiment)]
        accuracy["micro_delta_mean"] = [e.value for e in estimates]
        accuracy["micro_delta_low"] = [e.low for e in estimates]
        accuracy["micro_delta_high"] = [e.high for e in estimates]
        accuracy["micro_seeds"] = predictions.seed.nunique()
    return accuracy


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
