"""analysis.heads.plots on tiny tidy tables: the panels, and the curves and maps carrying the table's numbers."""
import numpy as np
import pandas as pd
import pytest
import torch

from analysis.core.plotting import PAPER_COLOR, save_figure
from analysis.heads import plots
from analysis.heads.plots import (plot_attention_overlay, plot_family_similarity, plot_head_query_maps,
                                  plot_head_redundancy, plot_head_similarity)


def per_layer(heads_rows: dict) -> pd.DataFrame:
    """SHViT Fig. 3's columns for {heads: [(similarity_pct, remove1_delta_pct, leave1_delta_pct) per layer]}."""
    return pd.DataFrame([{"heads": h, "layer": i + 1, "similarity_pct": s, "remove1_delta_pct": r,
                          "leave1_delta_pct": l} for h, rows in heads_rows.items() for i, (s, r, l) in enumerate(rows)])


def similarity_rows(model, values, *, metric="mean_pairwise_cosine", applicable=True, weights="random"):
    """Per-layer rows (head NaN) of `head_similarity_table` for one model and metric, plus one per-head row."""
    rows = [{"model": model, "weights": weights, "layer_index": i + 1, "head": np.nan, "metric": metric, "value": v,
             "applicable": applicable, "num_images": 4} for i, v in enumerate(values)]
    return pd.DataFrame(rows + [{**rows[0], "head": 0.0, "value": 0.0}])


@pytest.mark.usefixtures("figure_only")
def test_head_redundancy_rows_are_paper_and_micro_with_a_curve_per_head_count():
    paper = per_layer({3: [(49.5, -0.8, -1.7), (35.5, -1.0, -2.6)], 6: [(40.0, -0.5, -1.0), (30.0, -0.2, -0.9)]})
    micro = per_layer({3: [(30.8, -0.6, -1.5), (38.8, -0.5, -3.2)], 6: [(31.0, 0.1, -0.4), (33.0, 0.2, -0.8)]})
    full = similarity_rows("deit_tiny_patch16_224", [0.994, 0.998])
    full = full[full["head"].isna()]
    fig = plot_head_redundancy(paper, micro, full)
    axes = np.array(fig.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["head similarity (%)", "remove 1 head: best Δtop-1 (pp)",
                                                  "leave 1 head: best Δtop-1 (pp)"]
    for row, table in zip(axes, (paper, micro)):
        for ax, col in zip(row, ("similarity_pct", "remove1_delta_pct", "leave1_delta_pct")):
            three, six = ax.lines[:2]
            assert list(three.get_ydata()) == table[table.heads == 3][col].tolist()
            assert list(six.get_ydata()) == table[table.heads == 6][col].tolist()
            assert (three.get_label(), six.get_label()) == ("3 heads", "6 heads")
    assert len(axes[1, 0].lines) == 2 and len(axes[0, 1].lines) == 3  # deltas get a zero line
    full_curve = axes[0, 0].lines[2]
    assert list(full_curve.get_ydata()) == pytest.approx([99.4, 99.8])
    assert full_curve.get_label() == "null baseline: our DeiT-T, full scale, random weights"
    assert full_curve.get_linestyle() == ":" and axes[0, 0].get_ylim() == (0, 100)
    assert axes[0, 0].get_ylabel().startswith("reference")
    assert axes[1, 0].get_ylabel().startswith("ours")


@pytest.mark.usefixtures("figure_only")
def test_head_redundancy_bands_replace_the_micro_curves_they_cover():
    paper = per_layer({3: [(49.5, -0.8, -1.7), (35.5, -1.0, -2.6)]})
    micro = per_layer({3: [(30.8, -0.6, -1.5), (38.8, -0.5, -3.2)]})
    full = similarity_rows("deit_tiny_patch16_224", [0.994, 0.998])
    bands = pd.DataFrame({"heads": 3, "layer": [1, 2], "column": "similarity_pct", "value": [31.0, 39.0],
                          "low": [28.0, 36.0], "high": [34.0, 42.0], "seeds": 3})
    axes = np.array(plot_head_redundancy(paper, micro, full[full["head"].isna()], bands).axes).reshape(2, 3)
    curve = axes[1, 0].lines[0]
    assert list(curve.get_ydata()) == [31.0, 39.0] and curve.get_label() == "3 heads (mean of 3 seeds, 95% band)"
    band = axes[1, 0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == 28.0 and band.max() == 42.0
    assert axes[1, 1].lines[0].get_label() == "3 heads (seed 0)" and not axes[1, 1].collections


@pytest.mark.usefixtures("figure_only")
def test_head_query_maps_show_each_image_above_its_two_heads_maps():
    n = 2
    maps = {"images": torch.rand(n, 3, 8, 8), "layer_index": 6, "query_yx": (4.0, 3.0),
            "important": (1, -0.035), "redundant": (2, 0.007),
            "maps": {"important": torch.rand(n, 4, 4), "redundant": torch.rand(n, 4, 4)}}
    fig = plot_head_query_maps(maps, model="micro DeiT, 3 heads")
    axes = np.array(fig.axes[:3 * n]).reshape(3, n)
    colorbars = fig.axes[3 * n:]
    assert [c.get_ylabel() for c in colorbars] == ["attention weight"] * 2
    for r, kind in ((1, "important"), (2, "redundant")):  # a colour scale per head row, from 0
        vmax = float(maps["maps"][kind].max())
        assert colorbars[r - 1].get_ylim() == pytest.approx((0, vmax))
        assert all(ax.images[0].get_clim() == (0, vmax) for ax in axes[r])
    for i in range(n):
        assert np.array_equal(axes[0, i].images[0].get_array(), maps["images"][i].permute(1, 2, 0).numpy())
        assert np.array_equal(axes[1, i].images[0].get_array(), maps["maps"]["important"][i].numpy())
        assert np.array_equal(axes[2, i].images[0].get_array(), maps["maps"]["redundant"][i].numpy())
        assert (axes[0, i].lines[0].get_xdata()[0], axes[0, i].lines[0].get_ydata()[0]) == (3.0, 4.0)  # x, y
    assert axes[1, 0].get_ylabel() == "most important\nhead 1 (Δ -3.5 pp)"
    assert axes[2, 0].get_ylabel() == "most redundant\nhead 2 (Δ +0.7 pp)"
    assert fig.get_suptitle() == "micro DeiT, 3 heads, layer 6: where the centre token attends"
    assert not any(ax.get_xticks().size or ax.get_yticks().size for ax in axes.flat)


@pytest.mark.usefixtures("figure_only")
def test_family_similarity_writes_each_model_per_layer_and_metric_and_names_single_head_ones():
    table = pd.concat([similarity_rows(m, v, metric=metric, applicable=ok)
                       for m, v, ok in (("deit", [0.5, 0.6], True), ("shvit", [np.nan, np.nan], False),
                                        ("swin", [0.7, 0.9996], True))
                       for metric in ("mean_pairwise_cosine", "mean_max_cosine")])
    fig = plot_family_similarity(table)
    pairwise, max_cosine, colourbar = fig.axes
    assert pairwise.get_title() == "mean pairwise cosine (SHViT Fig. 4)"
    assert max_cosine.get_title() == "mean max cosine (EfficientViT Fig. 4): the paper gives no per-layer values"
    for ax in (pairwise, max_cosine):
        assert [t.get_text() for t in ax.get_yticklabels()] == ["deit (random: null baseline)",
                                                                "shvit (random: null baseline)",
                                                                "swin (random: null baseline)"]
        cells = ax.images[0].get_array()
        assert cells[0].tolist() == pytest.approx([50, 60]) and cells[2].tolist() == pytest.approx([70, 99.96])
        assert cells.mask[1].all()   # single head: no value
        assert [t.get_text() for t in ax.texts] == ["50.0", "60.0", "70.0", "100", "single head: not applicable"]
        assert ax.images[0].get_clim() == (0, 100)
    assert colourbar.get_ylabel() == "head similarity (%)"


def test_head_similarity_figure_has_each_model_and_the_papers_deit_curve_and_is_saved(monkeypatch, tmp_path):
    saved = []  # the figure, caught on its way to save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, stem: saved.append(fig) or save_figure(fig, stem))
    df = pd.concat([similarity_rows("deit_tiny_patch16_224", [0.5, 0.6]),
                    similarity_rows("shvit_s4", [np.nan, np.nan], applicable=False)])
    paths = plot_head_similarity(df, tmp_path / "fig.png")
    assert [p.name for p in paths] == ["fig.png", "fig.pdf"] and all(p.is_file() for p in paths)
    (ax,) = saved[0].axes
    ours, paper = ax.lines
    assert list(ours.get_ydata()) == pytest.approx([50, 60])
    assert ours.get_label() == "deit_tiny_patch16_224 (random: null baseline)" and ours.get_linestyle() == ":"
    assert paper.get_color() == PAPER_COLOR
    assert paper.get_label() == "reference: DeiT-T, SHViT paper Fig. 3 (pretrained, ImageNet)"
    assert ax.get_ylim() == (0, 100)
    assert ax.get_title() == "single-head (not applicable): shvit_s4"


@pytest.mark.usefixtures("figure_only")
def test_attention_overlay_draws_a_panel_per_head_on_the_image_with_one_scale():
    pixels, maps = torch.rand(32, 48, 3), torch.rand(7, 2, 3)
    fig = plot_attention_overlay(pixels, maps, labels=[f"head {h}" for h in range(7)], title="t", query_yx=(5.0, 9.0))
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 7 and len(fig.axes) == 2 * 6 + 1  # 2 rows of 6, one colourbar; the spare 5 hidden
    for h, ax in enumerate(panels):
        image, overlay = ax.images
        assert np.array_equal(image.get_array(), pixels.numpy()) and image.get_extent() == [0, 48, 32, 0]
        assert np.array_equal(overlay.get_array(), maps[h].numpy()) and overlay.get_extent() == [0, 48, 32, 0]
        assert overlay.get_clim() == (0, pytest.approx(float(maps.max()))) and ax.get_title() == f"head {h}"
        assert (ax.lines[0].get_xdata()[0], ax.lines[0].get_ydata()[0]) == (9.0, 5.0)  # x, y


@pytest.mark.usefixtures("figure_only")
def test_family_similarity_labels_trained_weights_as_results_random_ones_as_the_null_baseline_with_the_paper():
    table = pd.concat([similarity_rows("deit_tiny_patch16_224", [0.5, 0.6], weights="pretrained"),
                       similarity_rows("swin", [0.9, 0.95], weights="random")])
    pairwise = plot_family_similarity(table).axes[0]
    labels = [t.get_text() for t in pairwise.get_yticklabels()]
    assert labels == ["deit_tiny_patch16_224 (pretrained)", "swin (random: null baseline)",
                      "paper: DeiT-T, SHViT Fig. 3 (pretrained)"]
    # the paper's row: SHViT Fig. 3, DeiT-T with 3 heads, layers 1 and 2 (the table's columns)
    assert pairwise.images[0].get_array()[2].tolist() == pytest.approx([49.5, 35.5])
