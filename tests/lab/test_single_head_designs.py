"""analysis.single_head_designs: paper rows tied to our models, speeds and accuracy relative to SHViT."""
import pandas as pd
import pytest

from analysis.lab.single_head_designs import accuracy_table, FIG6_MODELS, paper_designs, speed_table, TABLE6_MODELS


def test_relative_speed_by_hand():
    designs = paper_designs()
    assert designs[designs.baseline].model.tolist() == ["shvitlab_t6_ratio4_67", "shvitlab_fig6_partial"]
    # two rounds per model: the table uses the median, then divides by the SHViT design of the experiment
    runs = pd.DataFrame([{"model": m, "runtime": "cpu", "images_per_s": v * k, "spread": 1.0, "round": r}
                         for m, v in zip(TABLE6_MODELS + FIG6_MODELS, [50, 60, 55, 40, 30, 80, 70, 100])
                         for r, k in enumerate((0.9, 1.1))])
    table = speed_table(runs, designs).set_index("model")
    assert table.loc["shvitlab_t6_ratio4_67", "ours_rel"] == pytest.approx(1.0)
    assert table.loc["shvitlab_t6_mhsa", "ours_rel"] == pytest.approx(50 / 40)
    assert table.loc["shvitlab_fig6_full", "ours_rel"] == pytest.approx(70 / 100)
    assert table.loc["shvitlab_t6_mhsa", "paper_rel"] == pytest.approx(50 / 62)  # paper CPU: 50 vs 62 img/s


def test_accuracy_deltas_by_hand():
    designs = paper_designs()
    keys = ["m", "n", "r8", "b", "r2", "bo", "fu", "b"]
    micro = pd.DataFrame({"experiment": ["table6"] * 5 + ["fig6"] * 3, "key": keys,
                          "val_top1": [38.0, 39.0, 41.0, 40.0, 42.0, 37.0, 36.0, 40.0], "partial_ratio": 0.2})
    acc = accuracy_table(designs, micro).set_index("model")
    assert acc.loc["shvitlab_t6_mhsa", "micro_delta"] == pytest.approx(-2.0)
    assert acc.loc["shvitlab_fig6_full", "micro_delta"] == pytest.approx(-4.0)
    assert acc.loc["shvitlab_t6_mhsa", "paper_delta"] == pytest.approx(77.7 - 77.4)
