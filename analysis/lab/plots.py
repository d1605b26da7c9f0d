"""Figures of the lab's experiments: the single-head designs and the Grad-CAM stem comparison; a
class-activation map over its image.

Each function returns the figure and writes nothing: the caller stamps `core.plotting.provenance`
and saves it with `core.plotting.save_figure`.
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from ..core.errors import not_a_command
from ..core.plotting import OURS_COLOR, PAPER_COLOR, use_style

__all__ = ["plot_single_head_designs", "plot_gradcam_stem", "plot_cam_overlay", "plot_frontier"]

_RUNTIME_NAMES = {"cpu": "CPU", "onnx": "ONNX", "cuda": "GPU"}
# One colour per source and runtime, in legend order: the paper in greys, ours in blues.
_SPEED_PALETTE = {"paper CPU": "0.45", "paper ONNX": "0.7", "paper GPU": "0.85",
                  "ours CPU": OURS_COLOR, "ours ONNX": "#7fb3e0", "ours GPU": "#c6dbef"}


_FAMILY_STYLE = {"16x16 stem, 3 stages": (OURS_COLOR, "o"), "4x4 stem, 4 stages": ("#d95f02", "s")}
_SWEEP_LABELS = {"meso_fig2_a": "(a)", "meso_fig2_b": "(b)", "meso_fig2_b128": "(b')", "meso_fig2_a_half": "(a) 1/2 w",
                 "meso_fig2_b_w64": "(b) 2x w", "meso_fig2_b_w96": "(b) 3x w"}


def plot_frontier(frontier: pd.DataFrame, matched: pd.DataFrame | None = None):
    """SHViT Fig. 2 as a speed-accuracy plane: per macro design (family), top-1 against CPU latency and
    against training compute, each member with its 95% intervals on both axes (latency: timing rounds;
    top-1: seeds and images), members joined in order of x. `frontier`: `lab.frontier.frontier_table`.
    `matched` (rows with x = "latency" / "training_macs", value, low, high): the family's interpolated
    top-1 at (a)'s x minus (a)'s, written on its panel. Returns the figure."""
    use_style()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained")
    panels = (("latency", "latency_ms", "CPU latency, ms per image (1 thread, log scale)"),
              ("training_macs", "training_macs", "training compute, MACs (forward MACs x images seen, log scale)"))
    for ax, (x, col, label) in zip(axes, panels):
        for family, g in frontier.groupby("family", sort=False):
            g = g.sort_values(col)
            color, marker = _FAMILY_STYLE.get(family, ("0.3", "^"))
            xerr = None if x != "latency" else [g.latency_ms - g.latency_low, g.latency_high - g.latency_ms]
            ax.errorbar(g[col], g.top1, xerr=xerr, yerr=[g.top1 - g.top1_low, g.top1_high - g.top1], fmt=marker + "-",
                        color=color, ms=7, capsize=3, label=f"{family} ({int(g.seeds.iloc[0])} seeds)")
            for row in g.itertuples():
                ax.annotate(_SWEEP_LABELS.get(row.key, row.key), (getattr(row, col), row.top1), xytext=(5, -12),
                            textcoords="offset points", fontsize=8, color=color)
        ax.set_xscale("log")
        ax.set(xlabel=label, ylabel="top-1 (%, meso val, mean over seeds)")
        if matched is not None and (m := matched[matched.x == x]).shape[0]:
            m = m.iloc[0]
            ax.text(0.02, 0.97, f"16x16 family at (a)'s {'latency' if x == 'latency' else 'compute'} minus (a):\n"
                    f"{m.value:+.1f} pp [{m.low:+.1f}, {m.high:+.1f}]", transform=ax.transAxes, va="top", fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_title("accuracy against measured latency")
    axes[1].set_title("accuracy against training compute")
    fig.suptitle("SHViT Fig. 2 as a speed-accuracy plane: two macro designs, each swept in size "
                 "(paper's Fig. 2 values are not transcribed in core.reference: none drawn)")
    return fig


def plot_single_head_designs(speed: pd.DataFrame, accuracy: pd.DataFrame):
    """SHViT Table 6 / Fig. 6 beside ours, in the scorecard's convention (`results/claims.csv`: the SHViT
    design against each variant): a row per experiment, the SHViT design's throughput divided by each
    variant's per runtime (paper and ours, ours with its 95% interval over rounds) on the left, the SHViT
    design's top-1 minus the variant's (paper, micro) on the right; the legend above the panels.

    `speed`: `single_head_designs.speed_table`; `accuracy`: `single_head_designs.accuracy_table`.
    Returns the figure.
    """
    use_style()
    experiments = speed.experiment.unique()
    fig = plt.figure(figsize=(11, 0.9 * speed.design.nunique() + 2.6), layout="constrained")
    grid = fig.add_gridspec(len(experiments) + 1, 2, width_ratios=[1.3, 1],
                            height_ratios=[0.25] + [len(speed[speed.experiment == e].design.unique()) for e in experiments])
    axes = np.array([[fig.add_subplot(grid[i + 1, j]) for j in range(2)] for i in range(len(experiments))])
    legend_row = fig.add_subplot(grid[0, :])   # the legend's own row: above the data, below the title
    for row, experiment in zip(axes, experiments):
        part = speed[speed.experiment == experiment]
        base = part.loc[part.baseline.astype(bool), "design"].iloc[0]
        _speed_bars(row[0], part[~part.baseline.astype(bool)])
        rounds = f" (ours: {int(part.rounds.min())} interleaved rounds, 95% t-interval)" if "rounds" in part else ""
        row[0].set_title(f"{experiment}: speed{rounds}", fontsize=9)
        row[0].set_xlabel("throughput: SHViT design ÷ variant (x)")
        row[0].set_ylabel("\n".join(textwrap.wrap(f"variant, vs the SHViT design: {base}", 34)), fontsize=8)
        acc = accuracy[accuracy.experiment == experiment]
        _accuracy_bars(row[1], acc[~acc.design.eq(base)])
        row[1].set(xlabel="top-1: SHViT design − variant (points)", ylabel="", yticklabels=[])
        row[1].set_title(f"{experiment}: accuracy", fontsize=9)
    entries = {}
    for ax in axes.ravel():
        entries.update(zip(ax.get_legend_handles_labels()[1], ax.get_legend_handles_labels()[0]))
    legend_row.axis("off")
    legend_row.legend(entries.values(), entries.keys(), loc="center", ncol=3, fontsize=8, frameon=False,
                      borderaxespad=0)
    fig.suptitle("Single-head designs: SHViT Table 6 and Fig. 6, paper vs measured here\n"
                 "as the scorecard reads them: > 1 (speed) or > 0 (top-1) puts the SHViT design ahead", fontsize=10)
    return fig


def _speed_bars(ax, part: pd.DataFrame) -> None:
    """Per variant, a bar per source and runtime: the SHViT design's throughput over the variant's (paper's
    and ours), ours with its 95% interval (the reciprocal of `ours_rel`'s)."""
    designs = list(part.design.unique())
    series = [(f"{src} {_RUNTIME_NAMES.get(rt, rt)}", src, rt) for src in ("paper", "ours") for rt in part.runtime.unique()]
    series = [(name, src, rt) for name, src, rt in series if part.loc[part.runtime == rt, f"{src}_rel"].notna().any()]
    series.sort(key=lambda s: list(_SPEED_PALETTE).index(s[0]) if s[0] in _SPEED_PALETTE else len(_SPEED_PALETTE))
    height = 0.8 / len(series)
    for k, (name, src, rt) in enumerate(series):
        rows = part[part.runtime == rt].set_index("design").reindex(designs)
        y = np.arange(len(designs)) - 0.4 + height * (k + 0.5)
        value = 1 / rows[f"{src}_rel"].to_numpy()
        err = None
        if src == "ours" and "ours_rel_low" in rows:
            err = [value - 1 / rows.ours_rel_high.to_numpy(), 1 / rows.ours_rel_low.to_numpy() - value]
        ax.barh(y, value, height=height, xerr=err, color=_SPEED_PALETTE.get(name, "0.5"),
                label=name + (", 95% interval" if err is not None else ""), error_kw={"capsize": 2.5, "lw": 1})
    ax.set_yticks(np.arange(len(designs)), labels=designs)
    ax.invert_yaxis()
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xlim(0, max(ax.get_xlim()[1], 1.15))


def _accuracy_bars(ax, acc: pd.DataFrame) -> None:
    """The SHViT design's top-1 minus each variant's: the paper's (reference, grey) and ours (micro), ours as
    the mean over seeds with its 95% interval when the table has one (`micro_delta_mean`, `_low`, `_high`;
    those are variant minus SHViT, so they flip)."""
    y = np.arange(len(acc))
    ax.barh(y - 0.2, -acc.paper_delta, height=0.4, color=PAPER_COLOR, label="top-1: paper (ImageNet, reference)")
    if "micro_delta_mean" in acc:
        ours = -acc.micro_delta_mean
        err = [ours + acc.micro_delta_high, -acc.micro_delta_low - ours]
        label = f"top-1: ours (micro, mean of {int(acc.micro_seeds.iloc[0])} seeds, 95% interval)"
    else:
        ours, err, label = -acc.micro_delta, None, "top-1: ours (micro, one seed)"
    ax.barh(y + 0.2, ours, height=0.4, xerr=err, color=OURS_COLOR, label=label, error_kw={"capsize": 3, "lw": 1})
    ax.set_yticks(y, labels=list(acc.design))
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.8)


def plot_gradcam_stem(examples: dict, scores: pd.DataFrame):
    """Grad-CAM of the 4x4- and 16x16-stem micro models: example images with their digit's box, a row
    of maps per model below, and the pointing game of each beside the random-point rate.

    `examples`: `lab.experiments.gradcam_examples()`; `scores`: `lab.experiments.gradcam_table()`
    (key, stem_stride, pointing_game, box_area; one row per model, in the order of the rows drawn).
    Returns the figure.
    """
    use_style()
    n = len(examples["images"])
    rows = [("image", None)] + [(f"{s}x{s} stem", key) for key, s in zip(scores.key, scores.stem_stride)]
    fig = plt.figure(figsize=(1.8 * n + 3.2, 5.6), layout="constrained")
    grid = fig.add_gridspec(len(rows), n + 2)
    vmax = max(float(m.max()) for key in scores.key for m in examples["maps"][key])  # one scale for every map
    overlay = None
    for r, (label, key) in enumerate(rows):
        for i in range(n):
            ax = fig.add_subplot(grid[r, i])
            ax.imshow(examples["images"][i].permute(1, 2, 0))
            if key is not None:
                overlay = ax.imshow(examples["maps"][key][i], cmap="jet", alpha=0.45, vmin=0, vmax=vmax)
            x0, y0, x1, y1 = examples["boxes"][i].tolist()
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="w", lw=1.2))
            ax.set(xticks=[], yticks=[])
            if i == 0:
                ax.set_ylabel(label)
    fig.colorbar(overlay, ax=fig.axes[n:], label="Grad-CAM (a.u., one scale for all maps)", shrink=0.8)
    ax = fig.add_subplot(grid[:, n:])
    p, n = scores.pointing_game / 100, scores.images
    half = 100 * 1.96 * np.sqrt(p * (1 - p) / n)  # 95% interval over the val images (normal approximation)
    ax.bar([f"{s}x{s}" for s in scores.stem_stride], scores.pointing_game, yerr=half, capsize=4, color=OURS_COLOR,
           label="ours, 95% interval over images")
    ax.axhline(scores.box_area.iloc[0], ls="--", color=PAPER_COLOR, label="random point")
    ax.set(ylabel="pointing game (%)", xlabel="stem", ylim=(0, 100), title="localisation, val set")
    ax.legend(fontsize=8)
    return fig


def plot_cam_overlay(pixels, cam, *, title: str, cbar_label: str = "map value"):
    """A class-activation map (`gradcam.CAM_METHODS`) over the image it explains, with a colourbar.

    `pixels`: [H, W, 3] in [0, 1] (`core.images.ImageView.pixels`); `cam`: [H, W] at the same
    resolution. Returns the figure.
    """
    use_style()
    pixels, cam = np.asarray(pixels), np.asarray(cam)
    fig, ax = plt.subplots(figsize=(4.6, 4.0), layout="constrained")
    ax.imshow(pixels)
    im = ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=float(cam.max()) or 1.0)
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.85, label=cbar_label)
    return fig


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
