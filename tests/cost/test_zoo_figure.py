"""analysis.cost.zoo_figure: the zoo table's counts and memory-bound share against hand-computed values, and
a figure where every model has one label and no label covers another."""
import itertools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from matplotlib.text import Annotation, Text

from analysis.core.errors import UserError
from analysis.cost.roofline import Machine, Roofline
from analysis.cost.zoo_figure import (ZOO_HIGHLIGHT, ZOO_MODELS, committed_machine, model_family, plot_zoo, zoo_row,
                                      zoo_table)

REPO = Path(__file__).resolve().parents[2]

# Conv2d(3 -> 8, 3x3, no bias) on one 3x8x8 fp32 image, then ReLU:
CONV_MACS = 8 * 8 * 8 * 3 * 9                      # 13,824: one product per output element and kernel tap
CONV_BYTES = 4 * (3 * 8 * 8 + 8 * 3 * 9 + 8 * 8 * 8)  # 3,680: input, weight read, output written
RELU_BYTES = 4 * 2 * 8 * 8 * 8                    # 4,096: 512 elements read and written


def machine(peak_flops: float, bandwidth: float = 1.0) -> Machine:
    return Machine("toy", "cpu", 1, peak_flops, bandwidth, 0.0)


def row(model: nn.Module, m: Machine) -> dict:
    return zoo_row(Roofline(model, torch.randn(1, 3, 8, 8), m), "toy", "hand")


def conv() -> nn.Module:
    return nn.Conv2d(3, 8, 3, padding=1, bias=False)


def test_one_conv_counts_are_the_hand_computed_ones():
    r = row(conv(), machine(1.0))
    assert (r["macs"], r["mem_bytes"], r["params"]) == (CONV_MACS, CONV_BYTES, 8 * 3 * 9)
    assert r["flops_per_byte"] == pytest.approx(2 * CONV_MACS / CONV_BYTES)   # 7.51 FLOP per byte
    assert (r["resolution"], r["batch_size"], r["model"], r["family"], r["machine"]) == (8, 1, "toy", "hand", "toy")


@pytest.mark.parametrize("peak_flops, share", [(1.0, 0.0), (100.0, 1.0)])
def test_one_conv_is_all_compute_bound_below_its_intensity_and_all_memory_bound_above(peak_flops, share):
    # ridge = peak_flops / bandwidth: 1 FLOP/byte (the conv's 7.5 is above it) or 100 (below it)
    r = row(conv(), machine(peak_flops))
    assert r["memory_bound_share"] == share
    expected_s = max(2 * CONV_MACS / peak_flops, CONV_BYTES / 1.0)
    assert r["predicted_ms"] == pytest.approx(expected_s * 1e3)
    assert r["memory_bound_ms"] == pytest.approx(share * expected_s * 1e3)


def test_memory_bound_share_is_the_relus_share_of_the_predicted_time():
    r = row(nn.Sequential(conv(), nn.ReLU()), machine(1.0))
    # the conv takes 27,648 s of compute, the ReLU (0 MACs, below any ridge) 4,096 s of traffic
    assert r["memory_bound_share"] == pytest.approx(RELU_BYTES / (2 * CONV_MACS + RELU_BYTES))


def test_a_model_with_an_uncounted_op_is_refused_not_drawn_short(monkeypatch):
    rl = Roofline(conv(), torch.randn(1, 3, 8, 8), machine(1.0))
    monkeypatch.setattr(rl.cost, "unsupported_ops", lambda: {"aten.mystery": 2})
    with pytest.raises(UserError, match="toy: no op rule counts aten.mystery"):
        zoo_row(rl, "toy")


def test_zoo_table_of_a_timm_model_matches_the_papers_count():
    table = zoo_table(["shvit_s1"], machine(3.5e10, 1.3e10), progress=False)
    (r,) = table.to_dict("records")
    assert (r["model"], r["family"], r["resolution"], r["batch_size"]) == ("shvit_s1", "shvit", 224, 1)
    assert r["macs"] == pytest.approx(241e6, rel=0.005)     # SHViT Table 1: 241 M MACs (fvcore, BN folded)
    assert r["params"] == pytest.approx(6.3e6, rel=0.01)    # 6.3 M parameters
    assert 0 < r["memory_bound_share"] < 1


def test_families_are_timm_modules():
    assert [model_family(n) for n in ("efficientvit_m4", "shvit_s1", "resnet18")] == \
        ["efficientvit_msra", "shvit", "resnet"]
    assert set(ZOO_HIGHLIGHT) <= {model_family(n) for n in ZOO_MODELS}
    with pytest.raises(UserError, match="unknown model 'resnet_nope'"):
        model_family("resnet_nope")


def test_committed_machine_is_read_from_the_projects_results(tmp_path, monkeypatch):
    monkeypatch.setenv("SHVIT_LAB_ROOT", str(tmp_path))
    with pytest.raises(UserError, match="run notebooks/09_roofline.ipynb on cpu first"):
        committed_machine("cpu")
    (tmp_path / "results").mkdir()
    described = tmp_path / "results" / "09_roofline_machine_cpu.csv"
    pd.DataFrame([machine(2.0, 4.0).to_dict()]).to_csv(described, index=False)
    assert committed_machine("cpu") == machine(2.0, 4.0)


# ----------------------------------------------------------------------------- the figure

def toy_table() -> pd.DataFrame:
    """16 models: a crowded cluster (two at one point, three more within 10%), both highlighted families,
    a spread of shares."""
    rng = np.random.default_rng(0)
    mib = 2 ** 20
    macs = np.r_[1e9, 1e9, 1.08e9, 0.92e9, 1.1e9, 1.0e9, rng.uniform(0.1e9, 5e9, 6), 0.24e9, 0.6e9, 0.08e9, 0.3e9]
    mem = np.r_[100, 100, 108, 100, 90, 110, rng.uniform(30, 800, 6), 46, 90, 25, 60] * mib
    family = ["cnn"] * 12 + ["shvit", "shvit", "efficientvit_msra", "efficientvit_msra"]
    return pd.DataFrame({"model": [f"model_{i}" for i in range(16)], "family": family, "macs": macs, "mem_bytes": mem,
                         "memory_bound_share": np.linspace(0.02, 0.6, 16)})


def labels_of(ax) -> list:
    return [t for t in ax.texts if isinstance(t, Annotation)]


def assert_labelled_apart(fig, expected: set):
    plane = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = labels_of(plane)
    assert sorted(t.get_text() for t in labels) == sorted(expected)   # every model once, nothing else
    boxes = {t.get_text(): t.get_window_extent(renderer).padded(-1) for t in labels}   # text and leader, 1 px slack
    frame = plane.get_window_extent(renderer)
    for a, b in itertools.combinations(boxes, 2):
        assert not boxes[a].overlaps(boxes[b]), f"labels {a} and {b} overlap"
    points = plane.collections[0].get_offset_transform().transform(plane.collections[0].get_offsets())
    for t in labels:   # no text covers a point
        assert not Text.get_window_extent(t, renderer).count_contains(points), f"{t.get_text()} covers a point"
    for name, box in boxes.items():
        assert frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1), f"{name} leaves the axes"


@pytest.mark.usefixtures("figure_only")
def test_every_model_has_one_label_and_no_two_labels_overlap():
    table = toy_table()
    fig = plot_zoo(table, ridge=2.6)
    assert_labelled_apart(fig, set(table["model"]))
    plane, colorbar, bars = fig.axes
    assert plane.get_xscale() == plane.get_yscale() == "log"
    assert colorbar.get_ylabel() == "memory-bound share of predicted time (%)"
    assert [t.get_text() for t in plane.get_legend().get_texts()] == [v[0] for v in ZOO_HIGHLIGHT.values()]
    assert any(t.get_text() == "ridge 2.6 FLOP/byte" for t in plane.texts)
    assert len(plane.collections[0].get_offsets()) == len(table)


@pytest.mark.usefixtures("figure_only")
def test_share_bars_are_the_shares_sorted_with_the_papers_families_named_in_colour():
    table = toy_table()
    labels = {m: f"M{i}" for i, m in enumerate(table["model"])}
    fig = plot_zoo(table, labels=labels)
    bars = fig.axes[2]
    t = table.sort_values("memory_bound_share")
    assert [p.get_width() for p in bars.patches] == pytest.approx(100 * t["memory_bound_share"].to_numpy())
    ticks = {tick.get_text(): tick.get_color() for tick in bars.get_yticklabels()}
    assert list(ticks) == [labels[m] for m in t["model"]]
    assert ticks["M12"] == ZOO_HIGHLIGHT["shvit"][1] and ticks["M14"] == ZOO_HIGHLIGHT["efficientvit_msra"][1]
    assert ticks["M0"] not in (ZOO_HIGHLIGHT["shvit"][1], ZOO_HIGHLIGHT["efficientvit_msra"][1])
    plt.close(fig)


@pytest.mark.artifacts
@pytest.mark.usefixtures("figure_only")
def test_the_committed_zoo_is_labelled_apart(monkeypatch):
    monkeypatch.setenv("SHVIT_LAB_ROOT", str(REPO))
    table = pd.read_csv(REPO / "results" / "10_model_zoo.csv")
    assert len(table) >= 30 and table["family"].nunique() >= 10
    fig = plot_zoo(table, ridge=committed_machine().ridge)
    assert_labelled_apart(fig, {ZOO_MODELS.get(m, m) for m in table["model"]})
