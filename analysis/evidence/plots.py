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


def plot_scorecard(card: pd.DataFrame, columns: int = 4) -> plt.Figure:
    """Panels of `scorecard()` rows: sanity checks, then findings, each in the table's order."""
    rules = {c.row: c.rule for c in CLAIMS}
    card = pd.concat([card[card.kind == "sanity"], card[card.kind != "sanity"]])
    rows = math.ceil(len(card) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.2 * rows), squeeze=False)
    for ax, r in zip(axes.flat, card.itertuples()):
        lo, hi = rules[r.row].region(r.paper_value)
        values = _finite(r.ci_low, r.ci_high, r.ours, r.paper_value, lo, hi)
        span = (max(values) - min(values)) or 1.0
        left, right = min(values) - 0.25 * span, max(values) + 0.25 * span
        ax.axvspan(max(lo, left), min(hi, right), color=REGION_COLOURS[r.boundary_from], alpha=0.12, lw=0)
        for edge in (lo, hi):
            if np.isfinite(edge):
                ax.axvline(edge, color="0.4", lw=0.8, ls=":")
        low, high = max(r.ci_low, left), min(r.ci_high, right)   # an unbounded interval runs off the panel
        ax.errorbar([r.ours], [0], xerr=[[r.ours - low], [high - r.ours]], fmt="o", color=OURS_COLOR,
                    capsize=4, label="ours, 95% interval")
        if np.isfinite(r.paper_value):
            ax.plot([r.paper_value], [0.5], marker="D", ls="none", color=PAPER_COLOR, mfc="white",
                    label="paper (reference)")
        ax.set_xlim(left, right)
        ax.set_ylim(-0.9, 1.0)
        ax.set_yticks([])
        kind = "sanity check" if r.kind == "sanity" else "finding"
        ax.set_title("\n".join(textwrap.wrap(f"[{kind}] {r.paper} {r.where}: {r.title}", 52)), fontsize=7.5)
        ax.set_xlabel("\n".join(textwrap.wrap(r.metric, 62)), fontsize=6.5)
        ax.tick_params(labelsize=7)
        ax.text(0.02, 0.93, r.verdict, transform=ax.transAxes, va="top", fontsize=8, fontweight="bold",
                color=VERDICT_COLOURS[r.verdict])
        if r.verdict == "not testable":
            ax.text(0.02, 0.74, "\n".join(textwrap.wrap(str(r.precondition), 70)[:2]), transform=ax.transAxes,
                    va="top", fontsize=5.5, color=VERDICT_COLOURS["not testable"])
        elif r.verdict == "underpowered":
            ax.text(0.02, 0.74, f"detects {r.detectable_effect:.3g}, needs {r.target_effect:.3g}",
                    transform=ax.transAxes, va="top", fontsize=6, color=VERDICT_COLOURS["underpowered"])
        when = "prospective" if r.prospective else "post hoc"
        ax.text(0.98, 0.93, f"{r.scale.split(' ')[0]}, {r.weights.split(' (')[0]}\n{when}", transform=ax.transAxes,
                va="top", ha="right", fontsize=6, color="0.35")
        ax.text(0.98, 0.03, str(r.measured_on), transform=ax.transAxes, ha="right", fontsize=5.5, color="0.45")
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
    for ax in axes.flat[len(card):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    regions = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.12) for c in REGION_COLOURS.values()]
    fig.legend(handles + regions, labels + ["the paper's claim (its number)", "the lab's boundary (paper gives none)"],
               loc="upper center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 1.02), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
