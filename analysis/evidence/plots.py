"""The scorecard as a figure: one small panel per claim, our 95% interval against the region the
paper's statement claims (shaded), the paper's own value as a reference marker, the verdict in
the panel's colour, the scale and weights under it."""
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

VERDICT_COLOURS = {"reproduced": "#2e7d32", "contradicted": "#c62828", "inconclusive": "#8d6e00"}


def plot_scorecard(card: pd.DataFrame, columns: int = 4) -> plt.Figure:
    """Panels of `scorecard()` rows, in their order."""
    rules = {c.id: c.rule for c in CLAIMS}
    rows = math.ceil(len(card) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 1.9 * rows), squeeze=False)
    for ax, r in zip(axes.flat, card.itertuples()):
        lo, hi = rules[r.claim].region(r.paper_value)
        values = [r.ci_low, r.ci_high, r.ours] + [v for v in (r.paper_value, lo, hi) if np.isfinite(v)]
        span = (max(values) - min(values)) or 1.0
        left, right = min(values) - 0.25 * span, max(values) + 0.25 * span
        ax.axvspan(max(lo, left), min(hi, right), color=VERDICT_COLOURS["reproduced"], alpha=0.12, lw=0)
        for edge in (lo, hi):
            if np.isfinite(edge):
                ax.axvline(edge, color="0.4", lw=0.8, ls=":")
        ax.errorbar([r.ours], [0], xerr=[[r.ours - r.ci_low], [r.ci_high - r.ours]], fmt="o", color=OURS_COLOR,
                    capsize=4, label="ours, 95% interval")
        if np.isfinite(r.paper_value):
            ax.plot([r.paper_value], [0.5], marker="D", ls="none", color=PAPER_COLOR, mfc="white",
                    label="paper (reference)")
        ax.set_xlim(left, right)
        ax.set_ylim(-0.8, 1.0)
        ax.set_yticks([])
        ax.set_title(f"{r.paper} {r.where}: {r.title}", fontsize=8.5)
        ax.set_xlabel("\n".join(textwrap.wrap(r.metric, 60)), fontsize=6.5)
        ax.tick_params(labelsize=7)
        ax.text(0.02, 0.93, r.verdict, transform=ax.transAxes, va="top", fontsize=8, fontweight="bold",
                color=VERDICT_COLOURS[r.verdict])
        if not r.decidable:  # the rule's precondition: this scale cannot test the claim
            ax.text(0.02, 0.72, f"scale cannot decide: {r.note}", transform=ax.transAxes, va="top", fontsize=6.5,
                    color=VERDICT_COLOURS["inconclusive"])
        ax.text(0.98, 0.93, f"{r.scale.split(' ')[0]}, {r.weights.split(' (')[0]}", transform=ax.transAxes,
                va="top", ha="right", fontsize=6, color="0.35")
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
    for ax in axes.flat[len(card):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles + [plt.Rectangle((0, 0), 1, 1, color=VERDICT_COLOURS["reproduced"], alpha=0.12)],
               labels + ["the paper's claim"], loc="upper center", ncol=3, frameon=False,
               bbox_to_anchor=(0.5, 1.02), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
