"""Figure 09b: the calibrated latency predictor, per stage (what bounds each) and on unseen models.

    >>> fig = plot_predictor(figure_stages, {"held-out set 1": summary_1, "held-out set 2": summary_2})

Top row, one panel per model: each stage's predicted time, split by the resource that bounds its ops
(compute, cache, memory, overhead), beside its measured time (black outline). Bottom row, one panel per
held-out set: every model's predicted against measured whole-model latency, for the calibrated predictor and
for the simple roofline on the same machine, with the ±10% and ±25% bands. The caller stamps provenance and
saves.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from ..core.errors import not_a_command
from ..core.plotting import OURS_COLOR, use_style
from .predictor import BOUNDS
from .zoo_figure import ZOO_MODELS

__all__ = ["plot_predictor", "BOUND_COLORS"]

BOUND_COLORS = {"compute": "#4c72b0", "cache": "#55a868", "memory": "#c44e52", "overhead": "#8c8c8c"}


def _stage_panel(ax, g: pd.DataFrame, title: str) -> None:
    x = np.arange(len(g))
    bottom = np.zeros(len(g))
    for bound in BOUNDS:
        ms = g[f"{bound}_bound_ms"].to_numpy()
        ax.bar(x - 0.2, ms, 0.4, bottom=bottom, color=BOUND_COLORS[bound], label=f"predicted: {bound}-bound")
        bottom += ms
    ax.bar(x + 0.2, g["measured_ms"], 0.4, facecolor="white", edgecolor="black", label="measured")
    ax.set_xticks(x, g["stage"], rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel("ms per batch")


def _accuracy_panel(ax, summary: pd.DataFrame, label: str, legend: bool) -> None:
    rows = summary[summary["model"] != "all"]
    lo, hi = rows[["measured_ms", "predicted_ms", "roofline_ms"]].min().min() / 1.5, \
        rows[["measured_ms", "predicted_ms", "roofline_ms"]].max().max() * 1.5
    line = np.array([lo, hi])
    ax.fill_between(line, line / 1.25, line * 1.25, color="0.92", label="±25%")
    ax.fill_between(line, line / 1.1, line * 1.1, color="0.82", label="±10%")
    ax.plot(line, line, color="black", lw=0.8)
    ax.scatter(rows["measured_ms"], rows["roofline_ms"], facecolors="none", edgecolors="0.4", s=28,
               label="simple roofline")
    ax.scatter(rows["measured_ms"], rows["predicted_ms"], color=OURS_COLOR, s=28, label="calibrated predictor")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured ms per batch",
           ylabel="predicted ms per batch")
    for axis in (ax.xaxis, ax.yaxis):   # a range under a decade would label its minor ticks, overlapping
        axis.set_minor_formatter(NullFormatter())
    pooled = summary[summary["model"] == "all"].iloc[0]
    ax.set_title(f"{label}\n{len(rows)} models, median |error| {pooled['median_abs_error_pct']:.1f}%\n"
                 f"(roofline {pooled['roofline_median_abs_error_pct']:.1f}%), worst "
                 f"{pooled['max_abs_error_pct']:.1f}%\nstage ρ {pooled['rho']:.3f}", fontsize=9)
    if legend:
        ax.legend(loc="upper left", fontsize=8, frameon=False)


def plot_predictor(stages: pd.DataFrame, summaries: Mapping[str, pd.DataFrame],
                   models: Sequence[str] = ("deit_tiny_patch16_224", "efficientvit_m4", "shvit_s4")):
    """Stage panels of `models` (at most 3 fit the width) from a predictor stage table with measured columns
    (`predictor.predictor_stages`), and an accuracy panel per `summaries` entry ({what the models are:
    `predictor.predictor_summary` of them}; the figure widens past 3 of them)."""
    use_style()
    fig = plt.figure(figsize=(max(12.0, 3.4 * len(summaries)), 8.6))
    grid = fig.add_gridspec(2, len(models) * len(summaries), height_ratios=[1, 1.25], hspace=0.6,
                            wspace=0.15 * len(models) * len(summaries))
    span, width = len(summaries), len(models)
    for i, model in enumerate(models):
        ax = fig.add_subplot(grid[0, i * span:(i + 1) * span])
        _stage_panel(ax, stages[stages["model"] == model], ZOO_MODELS.get(model, model))
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=5, frameon=False, fontsize=8, bbox_to_anchor=(0.5, 0.99))
    for i, (label, summary) in enumerate(summaries.items()):
        _accuracy_panel(fig.add_subplot(grid[1, i * width:(i + 1) * width]), summary, label, legend=i == 0)
    return fig


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
