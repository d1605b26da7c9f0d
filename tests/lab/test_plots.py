"""analysis.lab.plots on tiny tables: the panels, and the bars and maps carrying the table's numbers."""
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.patches import Rectangle

from analysis.core.plotting import OURS_COLOR, PAPER_COLOR
from analysis.lab.plots import plot_cam_overlay, plot_gradcam_stem, plot_single_head_designs

pytestmark = pytest.mark.usefixtures("figure_only")

EXPERIMENTS = ("Table 6 (S3)", "Fig. 6 (S2)")


def single_head_tables():
    """Two experiments of two designs (the second the SHViT baseline), timed on CPU and ONNX."""
    speed = pd.DataFrame([{"experiment": e, "design": d, "baseline": d == "SHViT", "runtime": rt, "ours_rel": ours,
                           "ours_rel_low": ours * 0.8, "ours_rel_high": ours * 1.25, "paper_rel": paper, "rounds": 12}
                          for e in EXPERIMENTS
                          for d, rel in (("MHSA", {"cpu": (0.8, 0.8), "onnx": (0.5, 0.625)}),
                                         ("SHViT", {"cpu": (1.0, 1.0), "onnx": (1.0, 1.0)}))
                          for rt, (ours, paper) in rel.items()])
    speed.loc[(speed.experiment == "Fig. 6 (S2)") & (speed.runtime == "cpu"), "paper_rel"] = np.nan  # ONNX only
    accuracy = pd.DataFrame([{"experiment": e, "design": d, "paper_delta": p, "micro_delta": m}
                             for e in EXPERIMENTS for d, p, m in (("MHSA", 0.3, -1.3), ("SHViT", 0.0, 0.0))])
    return speed, accuracy


def test_single_head_designs_read_as_the_scorecard_shvit_over_each_variant_with_intervals():
    speed, accuracy = single_head_tables()
    fig = plot_single_head_designs(speed, accuracy)
    t6_speed, t6_acc, f6_speed, f6_acc, legend_row = fig.axes
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "Table 6 (S3): speed (ours: 12 interleaved rounds, 95% t-interval)", "Table 6 (S3): accuracy",
        "Fig. 6 (S2): speed (ours: 12 interleaved rounds, 95% t-interval)", "Fig. 6 (S2): accuracy"]
    # one legend, in its own row above the panels: none over the data
    assert [ax.get_legend() is not None for ax in fig.axes] == [False, False, False, False, True]
    assert [t.get_text() for t in legend_row.get_legend().get_texts()] == [
        "paper CPU", "paper ONNX", "ours CPU, 95% interval", "ours ONNX, 95% interval",
        "top-1: paper (ImageNet, reference)", "top-1: ours (micro, one seed)"]
    paper_cpu, paper_onnx, ours_cpu, ours_onnx = [c for c in t6_speed.containers if isinstance(c, BarContainer)]
    # the SHViT design's speed over the variant's: 1 / 0.8 and 1 / 0.5 (ours), 1 / 0.625 (paper ONNX)
    assert [b.get_width() for b in ours_cpu] == pytest.approx([1.25])
    assert [b.get_width() for b in ours_onnx] == pytest.approx([2.0])
    assert [b.get_width() for b in paper_onnx] == pytest.approx([1.6])
    errors = [c for c in t6_speed.containers if isinstance(c, ErrorbarContainer)]
    cpu_interval = errors[0].lines[2][0].get_segments()[0][:, 0]
    assert cpu_interval == pytest.approx([1.25 / 1.25, 1.25 / 0.8])   # 1 / high, 1 / low
    assert [t.get_text() for t in t6_speed.get_yticklabels()] == ["MHSA"]   # the baseline is not a variant
    assert t6_speed.get_xlabel() == "throughput: SHViT design ÷ variant (x)"
    assert len([c for c in f6_speed.containers if isinstance(c, BarContainer)]) == 3   # no paper CPU in Fig. 6
    for ax in (t6_acc, f6_acc):
        paper, micro = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert [b.get_width() for b in paper] == pytest.approx([-0.3])   # SHViT minus the variant
        assert [b.get_width() for b in micro] == pytest.approx([1.3])
        assert ax.get_xlabel() == "top-1: SHViT design − variant (points)"


def test_single_head_accuracy_draws_the_seed_mean_with_its_interval_flipped_to_shvit_minus_variant():
    speed, accuracy = single_head_tables()
    accuracy = accuracy.assign(micro_delta_mean=[-1.0, 0.0] * 2, micro_delta_low=[-2.5, 0.0] * 2,
                               micro_delta_high=[0.5, 0.0] * 2, micro_seeds=3)
    fig = plot_single_head_designs(speed, accuracy)
    ax = fig.axes[1]
    paper, micro = [c for c in ax.containers if isinstance(c, BarContainer)]
    errors = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    assert [b.get_width() for b in micro] == pytest.approx([1.0])
    segments = errors.lines[2][0].get_segments()
    assert [x for seg in segments for x in (seg[0][0], seg[1][0])] == pytest.approx([-0.5, 2.5])
    assert fig.axes[-1].get_legend().get_texts()[-1].get_text() == "top-1: ours (micro, mean of 3 seeds, 95% interval)"


def test_gradcam_stem_shows_a_row_of_maps_per_model_and_the_pointing_game():
    n = 3
    examples = {"images": torch.rand(n, 3, 8, 8), "boxes": torch.tensor([[1, 2, 5, 6]] * n),
                "maps": {"stem4": torch.rand(n, 8, 8), "fig2_b": torch.rand(n, 8, 8)}}
    scores = pd.DataFrame({"key": ["stem4", "fig2_b"], "stem_stride": [4, 16], "pointing_game": [35.0, 20.2],
                           "box_area": [30.1, 30.1], "images": [1000, 1000]})
    fig = plot_gradcam_stem(examples, scores)
    assert len(fig.axes) == 3 * n + 2
    grid, colorbar, bars = np.array(fig.axes[:3 * n]).reshape(3, n), fig.axes[3 * n], fig.axes[-1]
    vmax = max(float(m.max()) for m in examples["maps"].values())
    assert colorbar.get_ylabel().startswith("Grad-CAM") and colorbar.get_ylim() == pytest.approx((0, vmax))
    assert all(ax.images[1].get_clim() == (0, vmax) for ax in grid[1:].flat)  # one scale for every map
    assert [row[0].get_ylabel() for row in grid] == ["image", "4x4 stem", "16x16 stem"]
    assert all(len(ax.images) == 1 for ax in grid[0]) and all(len(ax.images) == 2 for ax in grid[1:].flat)
    assert np.array_equal(grid[2, 1].images[1].get_array(), examples["maps"]["fig2_b"][1].numpy())
    box = [p for p in grid[1, 2].patches if isinstance(p, Rectangle)][0]
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (0.5, 1.5, 4, 4)
    assert [b.get_height() for b in bars.patches] == [35.0, 20.2]
    errors = next(c for c in bars.containers if isinstance(c, ErrorbarContainer))
    (low, high), _ = [seg[:, 1] for seg in errors.lines[2][0].get_segments()]
    assert (low, high) == pytest.approx((35.0 - 196 * (0.35 * 0.65 / 1000) ** 0.5, 35.0 + 196 * (0.35 * 0.65 / 1000) ** 0.5))
    assert [t.get_text() for t in bars.get_xticklabels()] == ["4x4", "16x16"]
    assert bars.patches[0].get_facecolor() == to_rgba(OURS_COLOR)
    (random_point,) = [line for line in bars.lines if line.get_linestyle() == "--"]
    assert list(random_point.get_ydata()) == [30.1, 30.1] and random_point.get_color() == PAPER_COLOR
    assert bars.get_ylim() == (0, 100) and bars.get_ylabel() == "pointing game (%)"


def test_cam_overlay_draws_the_map_over_its_image_with_a_colourbar():
    pixels, cam = torch.rand(16, 20, 3), torch.rand(16, 20)
    fig = plot_cam_overlay(pixels, cam, title="deit: gradcam, class 3", cbar_label="gradcam (a.u.)")
    ax, cbar = fig.axes
    image, overlay = ax.images
    assert np.array_equal(image.get_array(), pixels.numpy()) and np.array_equal(overlay.get_array(), cam.numpy())
    assert overlay.get_clim() == (0, pytest.approx(float(cam.max()))) and cbar.get_ylabel() == "gradcam (a.u.)"
    assert ax.get_title() == "deit: gradcam, class 3"
