"""Figures of the head analyses, drawn from their tidy tables (library: `heads.similarity`, ...).

`plot_head_similarity` (the CLI's figure) saves its figure with provenance; the others return the
figure and write nothing: the caller stamps `core.plotting.provenance` and saves it.
"""
from __future__ import annotations

from pathlib import Path

import math
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..core.errors import not_a_command
from ..core.plotting import OURS_COLOR, PAPER_COLOR, provenance, save_figure, use_style
from ..core.reference import load_reference

__all__ = ["plot_head_similarity", "plot_head_redundancy", "plot_head_query_maps", "plot_family_similarity",
           "plot_attention_overlay"]

# SHViT Fig. 3's three measurements per layer, in the columns of `lab.experiments.heads_table()`.
_REDUNDANCY_COLUMNS = (("similarity_pct", "head similarity (%)"),
                       ("remove1_delta_pct", "remove 1 head: best Δtop-1 (pp)"),
                       ("leave1_delta_pct", "leave 1 head: best Δtop-1 (pp)"))
_HEADS_COLORS = {3: OURS_COLOR, 6: "#d62728"}
_FAMILY_METRICS = (("mean_pairwise_cosine", "mean pairwise cosine (SHViT Fig. 4)"),
                   ("mean_max_cosine", "mean max cosine (EfficientViT Fig. 4)"))


def plot_head_similarity(df: pd.DataFrame, path: str | Path, *, metric: str = "mean_pairwise_cosine"):
    """Per-layer head similarity (%) per model on a 0-100 axis; random weights dotted and labelled as the null
    baseline they are; the paper's DeiT-T curve, marked as reference, when DeiT-T is plotted."""
    use_style()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    rows = df[(df.metric == metric) & df["head"].isna()]
    not_applicable = []
    for (model, weights), g in rows.groupby(["model", "weights"], sort=False):
        g = g[g.applicable.astype(bool)]
        if g.empty:
            not_applicable.append(model)
            continue
        null = weights == "random"  # untrained attention is near uniform: a null baseline, drawn as one
        ax.plot(g.layer_index, 100 * g.value, marker="o", ms=4, ls=":" if null else "-", mfc="white" if null else None,
                label=f"{model} (random: null baseline)" if null else f"{model} ({weights})")
    if rows.model.str.startswith("deit_tiny").any():
        ref = load_reference("shvit_fig3_deit_head_similarity")
        ref = ref[ref.heads == 3]
        ax.plot(ref.layer, ref.similarity_pct, ls="--", marker="s", ms=4, color=PAPER_COLOR,
                label="reference: DeiT-T, SHViT paper Fig. 3 (pretrained, ImageNet)")
    ax.set_ylim(0, 100)
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


def plot_head_redundancy(paper: pd.DataFrame, micro: pd.DataFrame, full: pd.DataFrame,
                         bands: Optional[pd.DataFrame] = None):
    """SHViT Fig. 3 beside ours: per layer, head similarity and the best remove-1 / leave-1 top-1 change,
    a curve per head count; the paper's DeiT-T on top (reference), the micro DeiT trained here below,
    and our full-scale DeiT-T similarity in the top-left panel on a 0-100 axis: dashed as a result with
    trained weights, dotted and labelled as the null baseline with random ones.

    `paper`: `load_reference("shvit_fig3_deit_head_similarity")`; `micro`: `lab.experiments.heads_table()`
    (both: heads, layer and the three columns); `full`: the per-layer mean_pairwise_cosine rows of
    `similarity.head_similarity_table` for one model; `bands` (`lab.replicates.head_bands`): where
    given, the micro curve of a column is the mean over seeds with its 95% interval shaded.
    Returns the figure.
    """
    use_style()
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), layout="constrained")
    for row, (table, label) in enumerate([(paper, "reference: the paper's DeiT-T\non ImageNet (pretrained)"),
                                          (micro, "ours: micro DeiT on cluttered digits (trained here)")]):
        for ax, (col, title) in zip(axes[row], _REDUNDANCY_COLUMNS):
            banded = bands[bands.column == col] if row == 1 and bands is not None else None
            if banded is not None and len(banded):
                for heads, g in banded.groupby("heads"):
                    seeds = int(g.seeds.iloc[0])
                    ax.plot(g.layer, g.value, marker="o", ms=3, color=_HEADS_COLORS[heads],
                            label=f"{heads} heads (mean of {seeds} seeds, 95% band)")
                    ax.fill_between(g.layer, g.low, g.high, color=_HEADS_COLORS[heads], alpha=0.2, lw=0)
            else:
                for heads, g in table.groupby("heads"):
                    ax.plot(g.layer, g[col], marker="o", ms=3, color=_HEADS_COLORS[heads],
                            label=f"{heads} heads" + (" (seed 0)" if row == 1 and bands is not None else ""))
            ax.set(title=title, xlabel="layer")
            if col != "similarity_pct":
                ax.axhline(0, color="0.6", lw=0.8)
        axes[row, 0].set_ylabel(label, fontsize=8)
    weights = ", ".join(full.weights.unique())
    null = weights == "random"  # untrained attention is near uniform: a null baseline, not a result
    axes[0, 0].plot(full.layer_index, 100 * full.value, ls=":" if null else "--", marker="x", ms=4, color="0.3",
                    label="null baseline: our DeiT-T, full scale, random weights" if null
                    else f"ours: DeiT-T full scale ({weights})")
    axes[0, 0].set_ylim(0, 100)
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    if bands is not None:
        axes[1, 2].legend(fontsize=7)
    return fig


def plot_head_query_maps(maps: dict, *, model: str):
    """Where the centre query token attends in the most important and the most redundant head of one
    layer: a column per image, the image with its query on top, the two heads' maps below.

    `maps`: `lab.experiments.head_query_maps()`; `model`: its model, for the title. Returns the figure.
    """
    use_style()
    n = len(maps["images"])
    fig, axes = plt.subplots(3, n, figsize=(1.9 * n, 5.9), layout="constrained", squeeze=False)
    for i in range(n):
        axes[0, i].imshow(maps["images"][i].permute(1, 2, 0))
        axes[0, i].plot(maps["query_yx"][1], maps["query_yx"][0], "r+", ms=10, mew=2)
    for r, kind in ((1, "important"), (2, "redundant")):  # one colour scale per head, shown by its colourbar
        vmax = max(float(m.max()) for m in maps["maps"][kind])
        for i in range(n):
            im = axes[r, i].imshow(maps["maps"][kind][i], cmap="magma", vmin=0, vmax=vmax)
        fig.colorbar(im, ax=axes[r, :].tolist(), label="attention weight", shrink=0.9)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
    (hi, dhi), (lo, dlo) = maps["important"], maps["redundant"]
    axes[0, 0].set_ylabel("image, query +")
    axes[1, 0].set_ylabel(f"most important\nhead {hi} (Δ {100 * dhi:+.1f} pp)")
    axes[2, 0].set_ylabel(f"most redundant\nhead {lo} (Δ {100 * dlo:+.1f} pp)")
    fig.suptitle(f"{model}, layer {maps['layer_index']}: where the centre token attends")
    return fig


def plot_family_similarity(table: pd.DataFrame):
    """SHViT Fig. 4 / EfficientViT Fig. 4 as a table a reader can read: one panel per paper's metric, a row
    per model and a column per attention layer, each cell coloured on 0-100% and written out, so families
    whose values differ in the last digit (random weights: 93-100%) stay apart. Random weights are labelled
    as the null baseline; single-head models (not applicable) get a grey row saying so; the paper's DeiT-T
    values (SHViT Fig. 3, the only per-layer numbers the papers give) are a row of the pairwise panel
    when DeiT-T is in the table.

    `table`: `similarity.head_similarity_table` with mean_pairwise_cosine and mean_max_cosine. Returns the figure.
    """
    use_style()
    layers = table[table["head"].isna()]
    models = list(dict.fromkeys(zip(layers.model, layers.weights)))
    paper = _paper_deit_row() if any(m.startswith("deit_tiny") for m, _ in models) else None
    applicable = layers[layers.applicable.astype(bool)]
    columns = int((applicable if len(applicable) else layers).layer_index.max())
    rows = len(models) + (paper is not None)
    fig, axes = plt.subplots(2, 1, figsize=(max(7.0, 3.2 + 0.5 * columns), 2 * (0.32 * rows + 1.0) + 0.6),
                             layout="constrained")
    for ax, (metric, title) in zip(axes, _FAMILY_METRICS):
        grid, labels, single = [], [], []
        for model, weights in models:
            g = layers[(layers.model == model) & (layers.weights == weights) & (layers.metric == metric)]
            values = pd.Series(100 * g.value.to_numpy(), index=g.layer_index.astype(int)).reindex(range(1, columns + 1))
            applicable = bool(g.applicable.astype(bool).all())
            grid.append(values.to_numpy() if applicable else np.full(columns, np.nan))
            labels.append(f"{model} (random: null baseline)" if weights == "random" else f"{model} ({weights})")
            if not applicable:
                single.append(len(grid) - 1)
        if paper is not None and metric == "mean_pairwise_cosine":
            grid.append(paper.reindex(range(1, columns + 1)).to_numpy())
            labels.append("paper: DeiT-T, SHViT Fig. 3 (pretrained)")
        image = _similarity_cells(ax, np.array(grid, dtype=float), labels, single)
        ax.set_title(title + ("" if metric == "mean_pairwise_cosine" else ": the paper gives no per-layer values"),
                     fontsize=9)
    axes[-1].set_xlabel("attention layer")
    fig.colorbar(image, ax=axes, shrink=0.8, label="head similarity (%)")
    return fig


def _paper_deit_row() -> pd.Series:
    """SHViT Fig. 3's DeiT-T (3 heads) head similarity per layer, in %."""
    ref = load_reference("shvit_fig3_deit_head_similarity")
    ref = ref[ref.heads == 3]
    return pd.Series(ref.similarity_pct.to_numpy(), index=ref.layer.astype(int))


def _similarity_cells(ax, grid: np.ndarray, labels: list, single: list):
    """A model x layer table of similarities (%): coloured on 0-100, each value written in its cell,
    single-head rows grey with 'not applicable'. Returns the image, for the colourbar."""
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto",
                      interpolation="nearest")
    for r, c in zip(*np.nonzero(np.isfinite(grid))):
        v = grid[r, c]
        ax.text(c, r, f"{v:.0f}" if v >= 99.95 else f"{v:.1f}", ha="center", va="center", fontsize=7,
                color="white" if v < 60 else "black")
    for r in single:
        ax.axhspan(r - 0.5, r + 0.5, color="0.85", lw=0)
        ax.text((grid.shape[1] - 1) / 2, r, "single head: not applicable", ha="center", va="center", fontsize=7.5,
                color="0.3")
    ax.set_yticks(range(len(labels)), labels=labels, fontsize=8)
    ax.set_xticks(range(grid.shape[1]), labels=range(1, grid.shape[1] + 1), fontsize=8)
    ax.grid(False)
    return image


def plot_attention_overlay(pixels, maps, *, labels: list[str], title: str, query_yx=None, cbar_label: str = "weight"):
    """Attention maps over the image they were computed on: one panel per map (e.g. per head of
    `heads.maps.query_attention`, or one `attention_rollout`), each token's weight drawn over the
    pixels it covers, one colour scale for all panels (from 0) with its colourbar, the query +.

    `pixels`: [H, W, 3] in [0, 1] (`core.images.ImageView.pixels`); `maps`: [n, gh, gw];
    `query_yx`: (y, x) in input pixels, or None. Returns the figure.
    """
    use_style()
    pixels, maps = np.asarray(pixels), np.asarray(maps)
    n = len(maps)
    cols = min(n, 6)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols + 0.8, 2.3 * rows + 0.5), layout="constrained",
                             squeeze=False)
    h, w = pixels.shape[:2]
    vmax = float(maps.max()) or 1.0
    for ax, m, label in zip(axes.flat, maps, labels):
        ax.imshow(pixels, extent=(0, w, h, 0))
        im = ax.imshow(m, cmap="magma", alpha=0.6, vmin=0, vmax=vmax, extent=(0, w, h, 0), interpolation="nearest")
        if query_yx is not None:
            ax.plot(query_yx[1], query_yx[0], "+", color="cyan", ms=10, mew=2)
        ax.set_title(label, fontsize=9)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
        ax.grid(False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes, shrink=0.8, label=cbar_label)
    fig.suptitle(title, fontsize=10)
    return fig


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
