"""GPU panels of figures 01, 06 and 09, drawn from what a lent GPU measured (`core.gpu_evidence`).

    >>> gpu = gpu_results()                                  # {} until results/gpu/<device>/ exists
    >>> plot_speed_accuracy(table, hardware, gpu=gpu)        # figure 01: + a row of throughput-ratio panels
    >>> plot_runtime_and_traffic(table, where=w, gpu=gpu)    # figure 06: + the GPU's runtime shares
    >>> plot_predictor(stages, {**cpu_summaries, **predictor_gpu_summaries(gpu)})   # figure 09: + a panel per GPU

Every panel is titled with the device and the date of its run (the folder's provenance), so a figure never
shows a GPU number without saying where and when it was measured. With no GPU results the figures are drawn
exactly as before: no panel, no placeholder.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..core.errors import not_a_command
from ..core.gpu_evidence import GpuResults
from ..core.plotting import OURS_COLOR, PAPER_COLOR
from ..core.reference import load_reference

__all__ = ["gpu_panel_title", "gpu_throughput_panel", "gpu_throughput_panels", "predictor_gpu_summaries"]


def gpu_panel_title(device: str, date: str, what: str) -> str:
    """"NVIDIA H100 80GB HBM3, 2026-12-06\n<what>": where and when first, then what the panel shows."""
    return f"{device}, {str(date)[:10]}\n{what}"


def gpu_throughput_panel(ax, results: GpuResults) -> None:
    """SHViT S1-S4 throughput on one GPU as a ratio to the paper's A100 figure, with its 95% interval over
    timing rounds; the dashed line at 1 is the paper's A100."""
    t = results.throughput
    names = load_reference("shvit_table2").set_index("timm_name")["model"]
    labels = [names.get(m, m) for m in t["model"]]
    x = np.arange(len(t))
    err = np.vstack([t["ratio"] - t["ratio_low"], t["ratio_high"] - t["ratio"]])
    ax.bar(x, t["ratio"], 0.6, color=OURS_COLOR, yerr=err, capsize=3, label="ours / paper")
    ax.axhline(1.0, color=PAPER_COLOR, ls="--", lw=1, label="paper's A100")
    for i, r in enumerate(t.itertuples()):
        ax.text(i, r.ratio_high, f"{r.ratio:.2f}x\n{r.images_per_s:,.0f}/s", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, max(1.0, float(t["ratio_high"].max())) * 1.3)
    precision = "AMP" if bool(t["amp"].iloc[0]) else "fp32"
    ax.set(ylabel="throughput / paper's A100")
    ax.set_title(gpu_panel_title(results.device, results.date,
                                 f"SHViT, batch {int(t['batch_size'].iloc[0])}, {precision}"), fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8, frameon=False)


def gpu_throughput_panels(axes, gpu: Mapping[str, GpuResults]) -> None:
    """One `gpu_throughput_panel` per device on `axes` (in order); axes left over are removed."""
    axes = list(np.ravel(axes))
    for ax, results in zip(axes, gpu.values()):
        gpu_throughput_panel(ax, results)
    for ax in axes[len(gpu):]:
        ax.remove()


def predictor_gpu_summaries(gpu: Mapping[str, GpuResults]) -> dict:
    """{panel title: the predictor's summary on that GPU} for `predictor_plots.plot_predictor`'s accuracy row:
    one panel per device, titled with the device, the date and the held-out models it was scored on."""
    return {gpu_panel_title(r.device, r.date, f"held-out set 2 ({len(r.predictor) - 1} models)"): r.predictor
            for r in gpu.values()}


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
