"""analysis.cost.plots on tiny tidy tables: the panels, and the bars and lines carrying the table's numbers."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.colors import to_rgba

from analysis.core.plotting import OURS_COLOR, PAPER_COLOR
from analysis.cost.breakdown import CATEGORIES, MEMORY_BOUND
from analysis.cost.plots import (plot_breakdown, plot_macro_design, plot_roofline, plot_runtime_and_traffic,
                                 plot_speed_accuracy, plot_variants)
from analysis.cost.throughput import rank_agreement

pytestmark = pytest.mark.usefixtures("figure_only")

# Two models over every category (in CATEGORIES order): runtime shares and mem_bytes. Memory-bound:
# model a 50% of runtime, 60 of 100 bytes; model b 25% of runtime, 50 of 200 bytes.
SHARES = {"a": [0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], "b": [0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]}
MEM_BYTES = {"a": [20, 10, 10, 10, 10, 20, 20], "b": [100, 50, 0, 0, 0, 0, 50]}


def breakdown():
    return pd.DataFrame([{"model": m, "device": "cpu", "batch_size": 4, "category": c, "memory_bound": MEMORY_BOUND[c],
                          "share": s, "mem_bytes": b}
                         for m in SHARES for c, s, b in zip(CATEGORIES, SHARES[m], MEM_BYTES[m])])


def bars_by_category(ax):
    """{category: [bar width per model]}: `plot_breakdown` draws one barh call per category, in order."""
    return {cat: [p.get_width() for p in container] for cat, container in zip(CATEGORIES, ax.containers)}


def test_breakdown_bars_are_the_shares_stacked_and_memory_bound_ones_hatched():
    fig = plot_breakdown(breakdown(), title="t")
    (ax,) = fig.axes
    assert len(ax.patches) == 2 * len(CATEGORIES)
    widths = bars_by_category(ax)
    for i, model in enumerate(SHARES):
        assert [widths[c][i] for c in CATEGORIES] == pytest.approx([100 * s for s in SHARES[model]])
    lefts = [p.get_x() for p in ax.containers[2]]  # element-wise starts where conv/matmul + reshape end
    assert lefts == pytest.approx([50, 75])
    for cat, container in zip(CATEGORIES, ax.containers):
        assert all((p.get_hatch() == "//") == MEMORY_BOUND[cat] for p in container), cat
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_xlim()) == ("t", "share of runtime (%)", (0, 100))


def test_breakdown_draws_into_a_given_axis():
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_breakdown(breakdown(), ax=right) is fig
    assert len(right.patches) == 2 * len(CATEGORIES) and not left.patches


def test_runtime_and_traffic_panels_show_shares_of_time_and_bytes_with_memory_bound_totals():
    fig = plot_runtime_and_traffic(breakdown(), where="a laptop")
    top, bottom = fig.axes
    assert top.get_title() == "Share of runtime\n(a laptop, batch 4)"
    assert bottom.get_title() == "Share of memory traffic (mem_bytes, counted)"
    assert bottom.get_xlabel() == "share of mem_bytes (%)"
    assert top.get_legend() is None and bottom.get_legend() is not None
    traffic = bars_by_category(bottom)
    assert [traffic[c][0] for c in CATEGORIES] == pytest.approx(MEM_BYTES["a"])  # 100 bytes in all
    assert [traffic[c][1] for c in CATEGORIES] == pytest.approx([b / 2 for b in MEM_BYTES["b"]])
    assert [t.get_text() for t in top.texts] == ["memory-\nbound", "50%", "25%"]
    assert [t.get_text() for t in bottom.texts] == ["memory-\nbound", "60%", "25%"]
    assert all(p.get_hatch() == "//" for p in bottom.containers[1])


def test_variants_bars_are_ours_and_the_papers():
    table = pd.DataFrame({"model": ["SHViT-S1", "SHViT-S1", "SHViT-S2", "SHViT-S2"],
                          "metric": ["params_m", "macs_m"] * 2, "ours": [6.3, 241.4, 11.5, 365.5],
                          "paper": [6.2, 241.0, 11.4, 366.0]})
    fig = plot_variants(table)
    params, macs = fig.axes
    assert (params.get_ylabel(), macs.get_ylabel()) == ("parameters (M)", "MACs (M), BN folded")
    for ax, i in ((params, 0), (macs, 1)):
        ours, paper = ax.containers
        assert [b.get_height() for b in ours] == pytest.approx(table.ours[i::2].tolist())
        assert [b.get_height() for b in paper] == pytest.approx(table.paper[i::2].tolist())
        assert ours[0].get_facecolor() == to_rgba(sns.desaturate(OURS_COLOR, 0.75))  # seaborn's bar saturation
        assert paper[0].get_facecolor() == to_rgba(sns.desaturate(PAPER_COLOR, 0.75))
        assert [t.get_text() for t in ax.get_xticklabels()] == ["SHViT-S1", "SHViT-S2"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ours", "paper"]
    assert fig.get_suptitle() == "SHViT variants: measured here vs paper Table 1"


def speed_table():
    """Six Table 2 rows: two EfficientViT-M, two SHViT and two others (their names get shortened)."""
    return pd.DataFrame({
        "model": ["MobileNetV3-Small", "EfficientViT-M2", "EfficientViT-M4", "SHViT-S1", "SHViT-S2",
                  "EfficientFormer-L1"],
        "paper_top1": [67.4, 70.8, 74.3, 72.8, 75.2, 79.2],
        "paper_cpu_img_s": [167.0, 147.0, 98.0, 143.0, 99.0, 20.0],
        "ours_img_s": [120.0, 95.0, 70.0, 107.0, 75.0, 9.0],
        "paper_gpu_img_s": [1e4, 2e4, 1.5e4, 2.5e4, 1.8e4, 4e3],
        "ours_gpu_img_s": [9e3, 1e4, 8e3, 2e4, 1e4, 3e3]})


def test_speed_accuracy_puts_each_model_at_its_throughput_and_top1():
    table = speed_table()
    fig = plot_speed_accuracy(table, {"CPU": ("Xeon", "here")})
    paper, ours, agreement = fig.axes
    assert (paper.get_title(), ours.get_title()) == ("paper: Xeon", "ours: here")
    not_shvit = ~table.model.str.startswith("SHViT")
    for ax, col in ((paper, "paper_cpu_img_s"), (ours, "ours_img_s")):
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "CPU throughput (images/s, log)"
        np.testing.assert_allclose(ax.collections[0].get_offsets(), table.loc[not_shvit, [col, "paper_top1"]])
        effvit, shvit = ax.lines  # each family as a curve, by rising top-1
        assert list(effvit.get_xdata()) == table[col][1:3].tolist()
        assert list(shvit.get_ydata()) == [72.8, 75.2]
        assert "MNv3-Small" in {t.get_text() for t in ax.texts} and "EffFormer-L1" in {t.get_text() for t in ax.texts}
    np.testing.assert_allclose(agreement.collections[0].get_offsets(), table[["paper_cpu_img_s", "ours_img_s"]])
    rho = rank_agreement(table, "ours_img_s", "paper_cpu_img_s")
    assert agreement.get_title() == f"rank agreement: Spearman ρ = {rho:.3f}" and rho < 1
    assert (agreement.get_xscale(), agreement.get_yscale()) == ("log", "log")
    guide = agreement.lines[0]  # the paper's speed times the median ratio
    ratio = (table.ours_img_s / table.paper_cpu_img_s).median()
    assert guide.get_ydata()[1] / guide.get_xdata()[1] == pytest.approx(ratio)


def test_speed_accuracy_adds_a_row_per_device():
    fig = plot_speed_accuracy(speed_table(), {"CPU": ("Xeon", "here"), "GPU": ("A100", "H100")})
    assert len(fig.axes) == 6
    gpu_paper, gpu_ours, gpu_agreement = fig.axes[3:]
    assert (gpu_paper.get_title(), gpu_ours.get_title()) == ("paper: A100", "ours: H100")
    assert gpu_agreement.get_xlabel() == "paper GPU throughput (images/s)"
    assert gpu_ours.collections[0].get_offsets()[0].tolist() == [9e3, 67.4]


def test_macro_design_micro_accuracy_with_seed_intervals():
    table = pd.DataFrame([{"model": m, "stage": "stem", "macs": 1e6, "mem_bytes": 2e6, "latency_ms": 1.0, "batch_size": 4}
                          for m in ("shvitlab_fig2_a", "shvitlab_fig2_b", "shvitlab_stem4", "shvitlab_stem16")])
    micro = pd.DataFrame({"experiment": ["fig2", "fig2", "stem", "stem"], "key": ["a", "b", "s4", "s16"],
                          "row": ["(a)", "(b)", "stem 4x4", "stem 16x16"], "val_top1": [60.2, 48.2, 68.5, 48.2]})
    intervals = pd.DataFrame({"key": ["a", "b", "s4", "s16"], "top1": [61.0, 49.0, 67.0, 49.0],
                              "top1_low": [59.0, 47.0, 65.0, 47.0], "top1_high": [63.0, 51.0, 69.0, 51.0], "seeds": 3})
    top1 = plot_macro_design(table, micro, intervals).axes[3]
    assert list(top1.lines[0].get_ydata()) == [61.0, 49.0]
    assert [seg[:, 1].tolist() for seg in top1.collections[0].get_segments()] == [[59.0, 63.0], [47.0, 51.0]]
    assert top1.get_legend().get_texts()[0].get_text() == "mean of 3 seeds, 95% interval"
    assert [t.get_text() for t in top1.texts] == ["61.0", "49.0"]


def test_macro_design_stacks_stages_per_model_and_plots_micro_accuracy():
    stages = ("stem", "stage1", "stage2")
    rows = [("shvitlab_fig2_a", [1e6, 2e6, 3e6]), ("shvitlab_fig2_b", [4e6, 5e6, np.nan]),
            ("shvitlab_stem4", [6e6, 7e6, np.nan]), ("shvitlab_stem16", [8e6, 9e6, np.nan])]
    table = pd.DataFrame([{"model": m, "stage": s, "macs": v, "mem_bytes": 2 * v, "latency_ms": v / 1e6,
                           "batch_size": 4} for m, values in rows for s, v in zip(stages, values)])
    micro = pd.DataFrame({"experiment": ["fig2", "fig2", "stem", "stem"],
                          "row": ["(a)", "(b)", "stem 4x4", "stem 16x16"], "val_top1": [60.2, 48.2, 68.5, 48.2]})
    fig = plot_macro_design(table, micro)
    assert len(fig.axes) == 8
    (macs, mem, latency, top1), (_, _, _, stem_top1) = fig.axes[:4], fig.axes[4:]
    assert [t.get_text() for t in macs.get_xticklabels()] == ["(a)", "(b)"]
    assert [t.get_text() for t in fig.axes[4].get_xticklabels()] == ["4", "16"]
    assert [c.get_label() for c in macs.containers] == list(stages)
    assert [b.get_height() for c in macs.containers for b in c] == pytest.approx([1, 4, 2, 5, 3, 0])
    assert [b.get_y() for b in macs.containers[1]] == pytest.approx([1, 4])  # stacked on the stem
    assert [b.get_height() for b in mem.containers[0]] == pytest.approx([2e6 / 2 ** 20, 8e6 / 2 ** 20])  # MiB
    assert [b.get_height() for b in fig.axes[6].containers[1]] == pytest.approx([7, 9])
    assert (macs.get_ylabel(), latency.get_ylabel()) == ("MACs (M) per image", "ms per batch of 4")
    assert mem.get_ylabel() == "mem_bytes (MiB) per image"
    assert macs.get_title() == "Fig. 2 designs: MACs" and fig.axes[4].get_xlabel() == "stem stride (S1 widths)"
    assert "(a) shvitlab_fig2_a; (b) shvitlab_fig2_b" in fig._suptitle.get_text()  # the designs, named
    assert list(top1.lines[0].get_ydata()) == [60.2, 48.2] and list(stem_top1.lines[0].get_ydata()) == [68.5, 48.2]
    assert list(stem_top1.lines[0].get_xdata()) == ["4", "16"]
    assert [t.get_text() for t in top1.texts] == ["60.2", "48.2"]
    assert len(macs.get_legend().get_texts()) == 6  # every stage a model can have


def test_macro_design_draws_stage_spreads_and_the_rounds_and_defines_the_designs():
    table = pd.DataFrame([{"model": m, "design": f"Fig. 2 {label}: {what}", "stage": st, "macs": 1e6, "mem_bytes": 2e6,
                           "latency_ms": ms, "spread_ms": 0.5 * ms, "batch_size": 16}
                          for m, label, what in (("shvitlab_fig2_a", "(a)", "4x4 stem"),
                                                 ("shvitlab_fig2_b256", "(b')", "(b) at 256 px"),
                                                 ("shvitlab_stem4", "", "a 4x4 stem"))
                          for st, ms in (("stem", 2.0), ("stage1", 4.0))])
    micro = pd.DataFrame({"experiment": ["fig2", "fig2", "stem"], "row": ["(a)", "(b')", "stem 4x4"],
                          "val_top1": [60.2, 48.2, 68.5]})
    rounds = pd.DataFrame({"round": [0, 0, 1, 1], "design": ["(a)", "(b)"] * 2, "seconds": [0.1, 0.03, 0.2, 0.05],
                           "batch_size": 4})
    fig = plot_macro_design(table, micro, rounds=rounds)
    latency = fig.axes[2]
    assert latency.get_title() == "Fig. 2 designs: CPU latency (whiskers: stage IQR)"
    # whiskers at each stage's top (2, then 2 + 4), half its spread either side
    segments = [seg[:, 1].tolist() for seg in latency.collections[0].get_segments()]
    assert sorted(segments) == [[1.5, 2.5], [1.5, 2.5], [5.0, 7.0], [5.0, 7.0]]
    assert "(a): 150.0 ms [100.0, 200.0]" in latency.texts[0].get_text() and "2 interleaved" in latency.texts[0].get_text()
    assert fig._suptitle.get_text().endswith("(a) 4x4 stem; (b') (b) at 256 px")


def roofline_tables():
    from analysis.cost.breakdown import categorize
    rows = []
    for model in ("a", "b"):
        for op, macs, mem in (("aten.mm", 10 ** 9, 10 ** 7), ("aten.add", 0, 10 ** 6), ("aten.view", 0, 0),
                              ("aten.native_layer_norm", 10 ** 5, 10 ** 6)):
            rows.append({"model": model, "op": op, "category": categorize(op), "macs": macs, "mem_bytes": mem,
                         "flops_per_byte": 2 * macs / mem if mem else np.nan, "predicted_s": 1e-3})
    ops = pd.DataFrame(rows)
    stages = pd.DataFrame({"model": ["a", "a", "b"], "stage": ["stem", "head", "stem"],
                           "macs": [10 ** 9, 10 ** 6, 10 ** 9],
                           "mem_bytes": [10 ** 7, 10 ** 6, 10 ** 7], "flops_per_byte": [200.0, 2.0, 200.0],
                           "predicted_ms": [20.0, 1.0, 30.0], "measured_ms": [40.0, 3.0, 35.0],
                           "achieved_flops": [5e10, 6.7e8, 5.7e10]})
    return ops, stages


def test_roofline_panels_put_each_op_on_the_roof_and_stages_at_their_measured_speed():
    from analysis.cost.roofline import Machine
    machine = Machine("fake", "cpu", 1, peak_flops=1e11, bandwidth=1e10, overhead_s=0.0)
    ops, stages = roofline_tables()
    fig = plot_roofline(ops, machine, stages)
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["a", "b", "per stage: predicted vs measured"]
    (legend_cell,) = [ax for ax in fig.axes if not ax.axison]   # the legend fills the grid's last cell
    labels = [t.get_text() for legend in legend_cell.findobj(plt.matplotlib.legend.Legend) for t in legend.get_texts()]
    assert {"stem, measured", "head, measured", "a", "b", "predicted = measured"} <= set(labels)
    roof = panels[0].lines[0]
    x, y = roof.get_data()
    assert np.allclose(y, np.minimum(1e11, 1e10 * x) / 1e9)
    points = np.vstack([c.get_offsets() for c in panels[0].collections])
    # ops: mm at 200 FLOP/byte on the peak, layer norm at 0.2 on the slope, add (0 macs) at the left edge, view
    # (no bytes) not drawn; stages at their achieved GFLOP/s: stem 50, head 0.67
    expected = {(200.0, 100.0), (0.2, 2.0), (0.02, 0.2), (200.0, 50.0), (2.0, 0.67)}
    assert {(round(px, 4), round(py, 4)) for px, py in points} == {(round(a, 4), round(b, 4)) for a, b in expected}
    scatter = panels[2].collections[0].get_offsets()
    assert scatter.tolist() == [[40.0, 20.0], [3.0, 1.0]]
    assert "ridge 10.0 FLOP/byte" in fig._suptitle.get_text()


def test_roofline_without_measurements_has_no_comparison_panel():
    ops, _ = roofline_tables()
    fig = plot_roofline(ops, {"name": "m", "device": "cpu", "threads": 1, "peak_flops": 1e11, "bandwidth": 1e10,
                              "overhead_s": 0.0})
    assert [ax.get_title() for ax in fig.axes if ax.axison] == ["a", "b"]
    labels = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]   # the legend cell: ops only
    assert len(fig.axes) == 3 and "element-wise (memory-bound)" in labels and not any("measured" in t for t in labels)
