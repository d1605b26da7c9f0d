"""Figures of the cost and speed analyses, drawn from their tidy tables."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..core.errors import not_a_command
from ..core.plotting import use_style
from .breakdown import CATEGORIES, MEMORY_BOUND

__all__ = ["plot_breakdown"]


def plot_breakdown(df: pd.DataFrame, ax=None, *, title: str = "Runtime breakdown"):
    """Stacked horizontal bars: one per model (and device), runtime share per category in %.

    Memory-bound categories are hatched. Returns the figure.
    """
    use_style()
    keys = ["model", "device"] if "device" in df.columns and df["device"].nunique() > 1 else ["model"]
    labels = df[keys].astype(str).agg(" / ".join, axis=1) if len(keys) > 1 else df["model"]
    wide = df.assign(label=labels).pivot_table(index="label", columns="category", values="share", sort=False)
    wide = wide.reindex(columns=[c for c in CATEGORIES if c in wide.columns]).fillna(0) * 100
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(wide) + 1.4))
    else:
        fig = ax.figure
    colors = plt.get_cmap("tab10").colors
    left = pd.Series(0.0, index=wide.index)
    for i, cat in enumerate(wide.columns):
        ax.barh(wide.index, wide[cat], left=left, color=colors[i % 10], edgecolor="white",
                hatch="//" if MEMORY_BOUND[cat] else None, label=cat + (" (memory-bound)" if MEMORY_BOUND[cat] else ""))
        left += wide[cat]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of runtime (%)")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False, fontsize=8)
    return fig


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
