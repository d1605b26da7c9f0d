"""Figures of the head analyses, drawn from their tidy tables (library: `heads.similarity`, ...)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..core.errors import not_a_command
from ..core.plotting import PAPER_COLOR, provenance, save_figure, use_style
from ..core.reference import load_reference

__all__ = ["plot_head_similarity"]


def plot_head_similarity(df: pd.DataFrame, path: str | Path, *, metric: str = "mean_pairwise_cosine"):
    """Per-layer head similarity (%) per model; the paper's DeiT-T curve when DeiT-T is plotted."""
    use_style()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    rows = df[(df.metric == metric) & df["head"].isna()]
    not_applicable = []
    for (model, weights), g in rows.groupby(["model", "weights"], sort=False):
        g = g[g.applicable.astype(bool)]
        if g.empty:
            not_applicable.append(model)
            continue
        ax.plot(g.layer_index, 100 * g.value, marker="o", ms=4, label=f"{model} ({weights})")
    if rows.model.str.startswith("deit_tiny").any():
        ref = load_reference("shvit_fig3_deit_head_similarity")
        ref = ref[ref.heads == 3]
        ax.plot(ref.layer, ref.similarity_pct, ls="--", marker="s", ms=4, color=PAPER_COLOR,
                label="DeiT-T, SHViT paper Fig. 3")
    ax.set_xlabel("attention layer")
    ax.set_ylabel("mean pairwise head similarity (%)" if metric == "mean_pairwise_cosine"
                  else f"{metric} (%)")
    if not_applicable:
        ax.set_title(f"single-head (not applicable): {', '.join(not_applicable)}", fontsize=8,
                     fontweight="normal")
    if ax.lines:
        ax.legend(fontsize=7)
    provenance(fig, scale="full", weights=", ".join(sorted(set(df.weights))),
               extra=f"{int(rows.num_images.max()) if len(rows) else 0} images")
    paths = save_figure(fig, Path(path).with_suffix(""))
    plt.close(fig)
    return paths


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
