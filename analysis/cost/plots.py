"""Figures of the cost and speed analyses, drawn from their tidy tables.

Each function returns the figure and writes nothing: the caller stamps `core.plotting.provenance`
and saves it with `core.plotting.save_figure`.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..core.errors import not_a_command
from ..core.plotting import OURS_COLOR, PAPER_COLOR, repel_texts, use_style
from .breakdown import CATEGORIES, MEMORY_BOUND, memory_bound_shares
from .gpu_plots import gpu_panel_title, gpu_throughput_panels
from .roofline import Machine
from .throughput import rank_agreement

__all__ = ["plot_breakdown", "plot_runtime_and_traffic", "plot_variants", "plot_speed_accuracy",
           "plot_macro_design", "plot_roofline"]

_VARIANT_METRICS = (("params_m", "parameters (M)"), ("macs_m", "MACs (M), BN folded"))
# Throughput columns of the speed-accuracy table per device: (the paper's, ours).
_SPEED_COLUMNS = {"CPU": ("paper_cpu_img_s", "ours_img_s"), "GPU": ("paper_gpu_img_s", "ours_gpu_img_s")}
# Tick labels of `macro_design.FIG2_MODELS` (any other model keeps its name) and a colour per stage.
_FIG2_LABELS = {"shvitlab_fig2_a": "(a)", "shvitlab_fig2_b": "(b)", "shvitlab_fig2_b256": "(b')",
                "shvitlab_fig2_b_attn1": "(b'')", "shvitlab_stem4": "4", "shvitlab_stem8": "8",
                "shvitlab_stem16": "16", "shvitlab_stem32": "32"}
_STAGE_COLORS = dict(zip(("stem", "stage1", "stage2", "stage3", "stage4", "head"), plt.get_cmap("tab10").colors))


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


def plot_runtime_and_traffic(df: pd.DataFrame, *, where: str, gpu: Optional[Mapping] = None):
    """EfficientViT Fig. 2 / SHViT Fig. 7 with its evidence: the share of runtime per category (top)
    above the share of counted mem_bytes (bottom), each bar followed by the memory-bound total.

    `df`: a breakdown table of one device (`breakdown.breakdown_table`); `where`: the hardware, for
    the title. `gpu` (`core.gpu_evidence.gpu_results()`): each device's runtime shares below ours, titled
    with the device and date of its run; none: the figure as without GPU results. Returns the figure.
    """
    use_style()
    gpu = list((gpu or {}).values())
    fig, axes = plt.subplots(2 + len(gpu), 1, figsize=(8, 7.2 + 3.2 * len(gpu)), layout="constrained")
    plot_breakdown(df, ax=axes[0], title=f"Share of runtime\n({where}, batch {_batch_sizes(df)})")
    for ax, r in zip(axes[1:], gpu):
        plot_breakdown(r.breakdown, ax=ax, title=gpu_panel_title(r.device, r.date, "Share of GPU runtime, batch "
                                                                 f"{_batch_sizes(r.breakdown)}"))
    traffic = df.assign(share=df["mem_bytes"] / df.groupby("model")["mem_bytes"].transform("sum"))
    plot_breakdown(traffic, ax=axes[-1], title="Share of memory traffic (mem_bytes, counted)")
    axes[-1].set_xlabel("share of mem_bytes (%)")
    for ax in axes[:-1]:
        ax.get_legend().remove()
    shares = memory_bound_shares(df)
    gpu_shares = [memory_bound_shares(r.breakdown)["runtime_share"] for r in gpu]
    for ax, values in zip(axes, (shares["runtime_share"], *gpu_shares, shares["mem_bytes_share"])):
        ax.text(101, -0.6, "memory-\nbound", fontsize=8, va="bottom", ha="left")
        for i, v in enumerate(values):
            ax.text(101, i, f"{100 * v:.0f}%", va="center", ha="left", fontsize=9)
    return fig


def plot_variants(table: pd.DataFrame):
    """SHViT S1..S4 beside the paper's Table 1: parameters and MACs, one panel each, ours and the
    paper's bar per variant. `table`: `variant_table.shvit_variant_table()`. Returns the figure."""
    use_style()
    long = table.melt(id_vars=["model", "metric"], value_vars=["ours", "paper"], var_name="source")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), layout="constrained")
    for ax, (metric, label) in zip(axes, _VARIANT_METRICS):
        sns.barplot(data=long[long.metric == metric], x="model", y="value", hue="source", ax=ax,
                    palette={"ours": OURS_COLOR, "paper": PAPER_COLOR})
        ax.set(xlabel="", ylabel=label)
        ax.legend(title="")
    fig.suptitle("SHViT variants: measured here vs paper Table 1")
    return fig


def plot_speed_accuracy(table: pd.DataFrame, hardware: Mapping[str, tuple[str, str]],
                        gpu: Optional[Mapping] = None):
    """SHViT Fig. 1 against our measurement: a row of panels per device of `hardware`
    ({"CPU" or "GPU": (the paper's hardware, ours)}): paper top-1 against the paper's throughput,
    against ours, and our throughput against the paper's with their rank agreement.

    `table`: one row per Table 2 model with model, paper_top1 and the device's throughput columns
    (CPU: paper_cpu_img_s, ours_img_s; GPU: paper_gpu_img_s, ours_gpu_img_s). `gpu`
    (`core.gpu_evidence.gpu_results()`): a last row with each lent GPU's SHViT throughput as a ratio to the
    paper's A100. Returns the figure.
    """
    use_style()
    extra = -(-len(gpu) // 3) if gpu else 0   # rows of three GPU panels
    fig, axes = plt.subplots(len(hardware) + extra, 3, figsize=(12, 4.8 * len(hardware) + 4.2 * extra),
                             squeeze=False, layout="constrained")
    if gpu:
        gpu_throughput_panels(axes[len(hardware):], gpu)
    labels = []
    for row, (device, (paper_where, ours_where)) in zip(axes, hardware.items()):
        paper_col, ours_col = _SPEED_COLUMNS[device]
        labels += _speed_frontier(row[0], table, paper_col, device, f"paper: {paper_where}", PAPER_COLOR)
        labels += _speed_frontier(row[1], table, ours_col, device, f"ours: {ours_where}", OURS_COLOR)
        labels += _speed_agreement(row[2], table, device, paper_col, ours_col)
    fig.suptitle("Speed vs accuracy of the SHViT Table 2 models: paper vs measured here")
    repel_texts(labels)
    return fig


def _families(table: pd.DataFrame):
    """The rows drawn as families (EfficientViT-M, SHViT) and the short model names the panels print."""
    effvit = table.model.str.startswith("EfficientViT")
    shvit = table.model.str.startswith("SHViT")
    short = table.model.str.replace("EfficientFormer", "EffFormer").str.replace("MobileNetV3", "MNv3")
    return effvit, shvit, short


def _speed_frontier(ax, table, col, device, title, color):
    """Paper top-1 against the throughput column `col` (log), the two families joined as curves."""
    effvit, shvit, short = _families(table)
    ax.scatter(table.loc[~shvit, col], table.loc[~shvit, "paper_top1"], s=22, color=color, alpha=0.8, zorder=2)
    for mask, c, style, ms, label in ((effvit, "tab:orange", "-o", 6, "EfficientViT-M"),
                                      (shvit, "tab:red", "-*", 12, "SHViT (S1-S4)")):
        part = table[mask].sort_values("paper_top1")
        ax.plot(part[col], part.paper_top1, style, color=c, ms=ms, lw=1.5, label=label, zorder=3)
    ax.set(xscale="log", xlabel=f"{device} throughput (images/s, log)", ylabel="ImageNet top-1 (%, paper)")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.08)
    lo, hi = np.log(ax.get_xlim())
    labels = []
    for x, y, name in zip(table[col], table.paper_top1, short):
        left = (np.log(x) - lo) / (hi - lo) > 0.72   # near the right edge: the label goes left of its point
        labels.append(ax.annotate(name, (x, y), xytext=(-4, 0) if left else (4, 0), textcoords="offset points",
                                  fontsize=7, color="0.25", va="center", ha="right" if left else "left",
                                  in_layout=False))
    ax.legend(loc="lower left", fontsize=8)
    return labels


def _speed_agreement(ax, table, device, paper_col, ours_col):
    """Our throughput against the paper's (log-log), the families highlighted, with the paper's speed
    scaled by the median ratio as a guide and the Spearman rank correlation in the title."""
    effvit, shvit, short = _families(table)
    labels = []
    ax.scatter(table[paper_col], table[ours_col], s=22, color=OURS_COLOR, zorder=2, label="other models")
    for mask, c, marker, label in ((effvit, "tab:orange", "o", "EfficientViT-M"), (shvit, "tab:red", "*", "SHViT")):
        ax.scatter(table.loc[mask, paper_col], table.loc[mask, ours_col], s=110 if marker == "*" else 40,
                   marker=marker, color=c, zorder=3, label=label)
        left = marker == "*"  # SHViT labels left of the points, EfficientViT right: they sit close together
        labels += [ax.annotate(name, (x, y), xytext=(-6, 0) if left else (6, 0), textcoords="offset points",
                               fontsize=7, ha="right" if left else "left", va="center", color=c, in_layout=False)
                   for x, y, name in zip(table.loc[mask, paper_col], table.loc[mask, ours_col], short[mask])]
    ratio = (table[ours_col] / table[paper_col]).median()
    lims = [table[paper_col].min() * 0.7, table[paper_col].max() * 1.4]
    ax.plot(lims, [v * ratio for v in lims], ls="--", color="0.5", lw=1, label=f"paper x {ratio:.2f} (median ratio)")
    ax.set(xscale="log", yscale="log", xlabel=f"paper {device} throughput (images/s)",
           ylabel=f"our {device} throughput (images/s)")
    ax.set_title(f"rank agreement: Spearman ρ = {rank_agreement(table, ours_col, paper_col):.3f}", fontsize=10)
    ax.set_xlim(right=lims[1] * 2.5)   # room for the EfficientViT labels right of their points
    ax.legend(loc="lower right", fontsize=8)   # below the diagonal, where no model sits
    return labels


def plot_macro_design(table: pd.DataFrame, micro: pd.DataFrame, micro_top1: Optional[pd.DataFrame] = None,
                      rounds: Optional[pd.DataFrame] = None):
    """SHViT Fig. 2 rebuilt: a row for the Fig. 2 designs and one for the stem strides, each with the
    per-stage MACs, mem_bytes (MiB) and latency of the full-size models stacked, and the micro top-1 beside;
    the designs' labels are defined under the title.

    `table`: model x stage (`macro_design.macro_design_table`'s columns, latency_ms and batch_size
    measured; with `spread_ms`, each stage's interquartile range over the timed passes is drawn as a
    whisker on its segment); `micro`: `lab.experiments.macro_table()` (experiment "fig2" / "stem", row,
    val_top1); `micro_top1` (`lab.replicates.top1_intervals`): where given, the micro top-1 is the mean
    over seeds with its 95% interval; `rounds` (`cost.macro_design.fig2_speed_rounds`' table: design,
    seconds, batch_size per round): the whole models' latency over interleaved rounds, written on the
    latency panel. Returns the figure.
    """
    use_style()
    models = list(table.model.unique())
    groups = [("Fig. 2 designs", "", [m for m in models if "fig2" in m], micro[micro.experiment == "fig2"]),
              ("stem stride", "stem stride (S1 widths)", [m for m in models if "stem" in m],
               micro[micro.experiment == "stem"])]
    metrics = [("macs", 1e6, "MACs (M) per image", "MACs"),
               ("mem_bytes", 2 ** 20, "mem_bytes (MiB) per image", "mem_bytes"),
               ("latency_ms", 1, f"ms per batch of {_batch_sizes(table)}",
                "CPU latency" + (" (whiskers: stage IQR)" if "spread_ms" in table else ""))]
    fig, axes = plt.subplots(2, 4, figsize=(13, 7.4), layout="constrained")
    for row, (title, xlabel, names, mic) in zip(axes, groups):
        part = table[table.model.isin(names)]
        for ax, (col, scale, label, name) in zip(row, metrics):
            _stacked_stages(ax, part, names, col, scale)
            ax.set(xlabel=xlabel, ylabel=label)
            ax.set_title(f"{title}: {name}", fontsize=9)
        _micro_accuracy(row[3], mic, micro_top1)
        row[3].set(ylabel="micro top-1 (%, cluttered digits)", xlabel=xlabel)
        row[3].set_title(f"{title}: accuracy (micro)", fontsize=9)
    if rounds is not None:
        axes[0, 2].text(0.98, 0.97, _rounds_note(rounds), transform=axes[0, 2].transAxes, ha="right", va="top",
                        fontsize=7.5, bbox={"facecolor": "white", "edgecolor": "0.8", "boxstyle": "round,pad=0.3"})
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _STAGE_COLORS.values()]
    axes[0, 0].legend(handles, list(_STAGE_COLORS), loc="upper right", ncol=2, fontsize=7.5, title="stage",
                      title_fontsize=7.5)
    fig.suptitle("SHViT Fig. 2 rebuilt: per-stage cost and latency at full scale, accuracy at micro scale\n"
                 + _fig2_key(table), fontsize=10)
    return fig


def _stacked_stages(ax, part: pd.DataFrame, names: list, col: str, scale: float) -> None:
    """One bar per model, its stages stacked; latency bars carry each stage's spread as a whisker."""
    wide = part.pivot_table(index="model", columns="stage", values=col, sort=False) / scale
    wide = wide.reindex(names).rename(index=_FIG2_LABELS)
    wide.plot.bar(stacked=True, ax=ax, color=[_STAGE_COLORS[s] for s in wide.columns], width=0.7, rot=0,
                  legend=False, edgecolor="white", linewidth=0.5)
    if col == "latency_ms" and "spread_ms" in part:
        spread = part.pivot_table(index="model", columns="stage", values="spread_ms", sort=False)
        spread = spread.reindex(index=names, columns=wide.columns).to_numpy()
        tops = wide.fillna(0).cumsum(axis=1).to_numpy()
        x = np.repeat(np.arange(len(wide))[:, None], tops.shape[1], axis=1)
        ok = np.isfinite(spread) & wide.notna().to_numpy()
        ax.errorbar(x[ok] + 0.2, tops[ok], yerr=spread[ok] / 2, fmt="none", ecolor="black", elinewidth=0.8,
                    capsize=2, label="stage spread (IQR)")


def _micro_accuracy(ax, mic: pd.DataFrame, micro_top1: Optional[pd.DataFrame]) -> None:
    """Micro top-1 per design, the mean over seeds with its 95% interval when `micro_top1` is given."""
    labels = mic.row.str.replace("stem ", "").str.replace(r"x\d+", "", regex=True)
    if micro_top1 is not None:
        est = micro_top1.set_index("key").loc[mic.key]
        top1, err = est.top1.to_numpy(), [est.top1 - est.top1_low, est.top1_high - est.top1]
        ax.errorbar(labels, top1, yerr=err, fmt="o-", color=OURS_COLOR, ms=8, capsize=4,
                    label=f"mean of {int(est.seeds.iloc[0])} seeds, 95% interval")
        ax.legend(fontsize=7.5, loc="lower left")
    else:
        top1 = mic.val_top1.to_numpy()
        ax.plot(labels, top1, "o-", color=OURS_COLOR, ms=8)
    for i, v in enumerate(top1):
        ax.annotate(f"{v:.1f}", (i, v), xytext=(9, 0), textcoords="offset points", va="center", fontsize=8)
    ax.margins(x=0.2, y=0.25)


def _fig2_key(table: pd.DataFrame) -> str:
    """What (a), (b), (b'), (b'') are, from the table's `design` column (or the model names)."""
    designs = table.drop_duplicates("model").set_index("model")
    parts = []
    for model, label in _FIG2_LABELS.items():
        if model in designs.index and label.startswith("("):
            what = designs.loc[model, "design"] if "design" in designs else model
            parts.append(f"{label} {str(what).split(': ', 1)[-1]}")
    return "; ".join(parts)


def _rounds_note(rounds: pd.DataFrame) -> str:
    """The whole models' latency over interleaved rounds: median [min, max] per design, and the rounds."""
    g = rounds.groupby("design", sort=False)["seconds"]
    lines = [f"{d}: {1e3 * v.median():.1f} ms [{1e3 * v.min():.1f}, {1e3 * v.max():.1f}]" for d, v in g]
    return (f"whole model, {rounds['round'].nunique()} interleaved rounds,\nbatch {int(rounds.batch_size.iloc[0])}, "
            "median [min, max]:\n" + "\n".join(lines))


_ZERO_INTENSITY = 0.02  # where ops with 0 macs (fvcore's convention for element-wise ops) are drawn on a log axis


def plot_roofline(ops: pd.DataFrame, machine, stages: Optional[pd.DataFrame] = None):
    """Each model's ops on the machine's roofline, and predicted against measured stage latency.

    One panel per model (`ops`: `Roofline.ops()` tables with a `model` column): every op that moves
    bytes at its arithmetic intensity (FLOP per byte, 2 per MAC) on the roof min(peak, bandwidth x
    intensity), coloured by the runtime-breakdown category, hollow when the category is memory-bound,
    its area proportional to its predicted time; ops with 0 macs sit on the roof at the left edge. With `stages`
    (`roofline_stages` with measured_ms), each stage is drawn at the FLOP/s it achieved (black, one
    marker per stage, named in the legend), and a panel puts predicted against measured stage time
    (log-log, y = x). The legend fills the grid's last cells, so no cell is left empty.
    `machine`: a `Machine` (or its dict). Returns the figure.
    """
    use_style()
    m = machine if isinstance(machine, Machine) else Machine.from_dict(machine)
    models = list(ops["model"].unique())
    panels = len(models) + (stages is not None)
    cols = min(panels + 1, 3)
    rows = -(-(panels + 1) // cols)
    fig = plt.figure(figsize=(3.4 * cols, 3.0 * rows + 0.4), layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    axes = [fig.add_subplot(grid[i // cols, i % cols]) for i in range(panels)]
    legend_ax = fig.add_subplot(grid[panels // cols, panels % cols:])
    moving = ops[ops["mem_bytes"] > 0]
    x_max = max(10 * m.ridge, float(moving["flops_per_byte"].max()) * 2)
    order = sorted(set(stages["stage"]) if stages is not None else (), key=_stage_rank)
    markers = dict(zip(order, itertools.cycle("s^vp*hXD")))
    for ax, model in zip(axes, models):
        _roofline_panel(ax, moving[moving["model"] == model], m, x_max, 250 / max(float(moving["predicted_s"].max()), 1e-12))
        if stages is not None:
            st = stages[(stages["model"] == model) & (stages["mem_bytes"] > 0) & (stages["macs"] > 0)]
            for r in st.itertuples():
                ax.scatter(r.flops_per_byte, r.achieved_flops / 1e9, marker=markers[r.stage], color="black", s=30,
                           zorder=3, label=f"{r.stage}, measured")
        ax.set_title(model, fontsize=9)
    if stages is not None:
        _predicted_vs_measured(axes[len(models)], stages, models)
    _roofline_legend(legend_ax, axes, models=stages is not None, span=cols - panels % cols)
    fig.suptitle(f"Roofline: {m.name}\npeak {m.peak_flops / 1e9:.0f} GFLOP/s, {m.bandwidth / 1e9:.1f} GB/s, "
                 f"ridge {m.ridge:.1f} FLOP/byte", fontsize=10)
    return fig


def _stage_rank(stage: str) -> tuple:
    """Stages in model order: the stem, stage1..N, the head."""
    return (stage != "stem", stage == "head", stage)


def _roofline_panel(ax, ops: pd.DataFrame, m: Machine, x_max: float, scale: float) -> None:
    """One model's ops that move bytes on the roof (area: predicted time; hollow: memory-bound category)."""
    colors = dict(zip(CATEGORIES, plt.get_cmap("tab10").colors))
    roof_x = np.logspace(np.log10(_ZERO_INTENSITY), np.log10(x_max), 200)
    ax.plot(roof_x, m.attainable(roof_x) / 1e9, color="0.2", lw=1.5, zorder=1, label="roof: min(peak, bandwidth x I)")
    ax.axvline(m.ridge, color="0.6", ls=":", lw=1, label=f"ridge ({m.ridge:.1f} FLOP/byte)")
    for cat in CATEGORIES:
        c = ops[ops["category"] == cat]
        if c.empty:
            continue
        x = c["flops_per_byte"].clip(lower=_ZERO_INTENSITY)
        hollow = MEMORY_BOUND[cat]
        ax.scatter(x, m.attainable(x) / 1e9, s=6 + scale * c["predicted_s"], alpha=0.6, zorder=2,
                   facecolors="none" if hollow else colors[cat], edgecolors=colors[cat], linewidths=1,
                   label=cat + (" (memory-bound)" if hollow else ""))
    ax.set(xscale="log", yscale="log", xlabel="FLOP/byte (2 per MAC)", ylabel="attainable GFLOP/s")
    ax.set_xlim(_ZERO_INTENSITY / 2, x_max)


def _roofline_legend(ax, axes, *, models: bool, span: int) -> None:
    """The roofline figure's legend cell (`span` grid cells wide): what each mark means (roof, ridge, op
    categories, stages) and, with `models`, the models' colours of the predicted-vs-measured panel (last
    of `axes`), beside it when the cell is two wide, else in that panel."""
    entries = {}
    for panel in axes[:-1] if models else axes:
        for handle, label in zip(*panel.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    entries = dict(sorted(entries.items(), key=lambda e: _stage_rank(e[0].removesuffix(", measured"))
                          if e[0].endswith(", measured") else (-1, False, "")))  # stages last, in model order
    ax.axis("off")
    legend = ax.legend(entries.values(), entries.keys(), loc="upper left", fontsize=7.5, frameon=False,
                       borderaxespad=0, title_fontsize=7.5, alignment="left",
                       title=f"area ∝ predicted time; ops with 0 macs\nat the left edge ({_ZERO_INTENSITY} FLOP/byte)")
    if not models:
        return
    where = ax if span >= 2 else axes[-1]
    if where is ax:
        ax.add_artist(legend)
    where.legend(*axes[-1].get_legend_handles_labels(), loc="upper right" if where is ax else "upper left",
                 fontsize=7.5, frameon=False, borderaxespad=0 if where is ax else 0.5, title_fontsize=7.5,
                 alignment="left", title="predicted vs measured" if where is ax else None)


def _predicted_vs_measured(ax, stages: pd.DataFrame, models: list) -> None:
    """The roofline figure's last panel: predicted against measured stage latency, log-log, with y = x."""
    for model in models:
        st = stages[stages["model"] == model]
        ax.scatter(st["measured_ms"], st["predicted_ms"], s=28, label=model, zorder=2)
    lo = float(min(stages["measured_ms"].min(), stages["predicted_ms"].min())) * 0.7
    hi = float(max(stages["measured_ms"].max(), stages["predicted_ms"].max())) * 1.4
    ax.plot([lo, hi], [lo, hi], color="0.4", ls="--", lw=1, label="predicted = measured")
    ax.set(xscale="log", yscale="log", xlabel="measured stage latency (ms)", ylabel="predicted (ms)")
    ax.set_title("per stage: predicted vs measured", fontsize=9)


def _batch_sizes(table: pd.DataFrame) -> str:
    """The batch size(s) a measured table was timed at, for a label."""
    return ", ".join(str(int(b)) for b in table["batch_size"].dropna().unique())


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
