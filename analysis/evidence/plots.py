"""The scorecard as a figure: one small panel per row, sanity checks first and then the papers'
findings, our 95% interval against the region the rule accepts (shaded; labelled the lab's where
the paper gives no number), the paper's own value as a reference marker, the verdict in its
colour, and under it the scale, the weights, the device and whether the row was registered before
its numbers (prospective) or after (post hoc)."""
from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..core.errors import not_a_command
from ..core.plotting import OURS_COLOR, PAPER_COLOR
from .claims import CLAIMS

__all__ = ["plot_scorecard", "VERDICT_COLOURS"]

VERDICT_COLOURS = {"reproduced": "#2e7d32", "contradicted": "#c62828", "inconclusive": "#8d6e00",
                   "underpowered": "#6a1b9a", "not testable": "#616161"}
REGION_COLOURS = {"paper": VERDICT_COLOURS["reproduced"], "lab": "#1565c0"}


def _finite(*values: float) -> list[float]:
    return [v for v in values if np.isfinite(v)]


def plot_scorecard(card: pd.DataFrame, columns: int = 3) -> plt.Figure:
    """Panels of `scorecard()` rows: sanity checks, then findings, each in the table's order; the legend
    on top, or in the last row's free cells. 3 columns keep the text legible at a notebook's width."""
    rules = {c.row: c.rule for c in CLAIMS}
    card = pd.concat([card[card.kind == "sanity"], card[card.kind != "sanity"]])
    rows = math.ceil(len(card) / columns)
    free = rows * columns - len(card)
    fig = plt.figure(figsize=(3.6 * columns, 2.3 * rows + 0.5), layout="constrained")
    grid = fig.add_gridspec(rows, columns)
    axes = [fig.add_subplot(grid[i // columns, i % columns]) for i in range(len(card))]
    for ax, r in zip(axes, card.itertuples()):
        _panel(ax, r, rules[r.row])
    handles, labels = axes[0].get_legend_handles_labels()
    regions = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.12) for c in REGION_COLOURS.values()]
    entries = (handles + regions, labels + ["the paper's claim (its number)", "the lab's boundary (paper gives none)"])
    if free:
        cell = fig.add_subplot(grid[rows - 1, columns - free:])
        cell.axis("off")
        cell.legend(*entries, loc="center", frameon=False, fontsize=8)
    else:
        fig.legend(*entries, loc="outside upper center", ncol=2, frameon=False, fontsize=8)
    return fig


def _panel(ax, r, rule) -> None:
    """One scorecard row: our interval against the rule's region, the paper's marker, the verdict and
    what the row rests on. An absolute value (the metric says |...|) is drawn from 0."""
    lo, hi = rule.region(r.paper_value)
    values = _finite(r.ci_low, r.ci_high, r.ours, r.paper_value, lo, hi)
    span = (max(values) - min(values)) or 1.0
    left, right = min(values) - 0.25 * span, max(values) + 0.25 * span
    if "|" in r.metric:   # an absolute value: nothing below 0 to show
        left, right = 0.0, max(_finite(r.ci_high, r.ours, r.paper_value, hi)) * 1.25 or 1.0
    ax.axvspan(max(lo, left), min(hi, right), color=REGION_COLOURS[r.boundary_from], alpha=0.12, lw=0)
    for edge in (lo, hi):
        if np.isfinite(edge) and left <= edge <= right:
            ax.axvline(edge, color="0.4", lw=0.8, ls=":")
    low, high = max(r.ci_low, left), min(r.ci_high, right)   # an unbounded interval runs off the panel
    ax.errorbar([r.ours], [0], xerr=[[r.ours - low], [high - r.ours]], fmt="o", color=OURS_COLOR,
                capsize=4, label="ours, 95% interval")
    if np.isfinite(r.paper_value):
        ax.plot([r.paper_value], [0.5], marker="D", ls="none", color=PAPER_COLOR, mfc="white", clip_on=False,
                label="paper (reference)")
    ax.set_xlim(left, right)
    ax.set_ylim(-0.9, 1.0)
    ax.set_yticks([])
    kind = "sanity check" if r.kind == "sanity" else "finding"
    ax.set_title("\n".join(textwrap.wrap(f"[{kind}] {r.paper} {r.where}: {r.title}", 50)), fontsize=7.5)
    ax.set_xlabel("\n".join(textwrap.wrap(r.metric, 56)), fontsize=7)
    ax.tick_params(labelsize=7)
    _panel_notes(ax, r)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)


def _panel_notes(ax, r) -> None:
    """The verdict (its colour), why a row could not decide, scale / weights / timing, and the device."""
    ax.text(0.02, 0.95, r.verdict, transform=ax.transAxes, va="top", fontsize=8, fontweight="bold",
            color=VERDICT_COLOURS[r.verdict])
    if r.verdict == "not testable":
        ax.text(0.02, 0.76, "\n".join(textwrap.wrap(str(r.precondition), 48)[:2]), transform=ax.transAxes,
                va="top", fontsize=6.5, color=VERDICT_COLOURS["not testable"])
    elif r.verdict == "underpowered":
        ax.text(0.02, 0.76, f"detects {r.detectable_effect:.3g}, needs {r.target_effect:.3g}",
                transform=ax.transAxes, va="top", fontsize=6.5, color=VERDICT_COLOURS["underpowered"])
    when = "prospective" if r.prospective else "post hoc"
    ax.text(0.98, 0.95, f"{r.scale.split(' ')[0]}, {r.weights.split(' (')[0]}\n{when}", transform=ax.transAxes,
            va="top", ha="right", fontsize=6.5, color="0.35")
    if isinstance(r.measured_on, str) and r.measured_on:
        ax.text(0.98, 0.03, r.measured_on, transform=ax.transAxes, ha="right", fontsize=6.5, color="0.45")

if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
