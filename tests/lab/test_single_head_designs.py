"""analysis.lab.single_head_designs: paper rows tied to our models, speeds and accuracy relative to SHViT."""
import math

import numpy as np
import pandas as pd
import pytest

from analysis.lab.single_head_designs import (accuracy_table, FIG6_MODELS, paper_designs,
                                              relative_speed, speed_sentences, speed_table, TABLE6_MODELS)

T_975_DF2 = 4.302652729749464  # Student t, 97.5th percentile, 2 degrees of freedom (tables)


def rounds_of(speeds: dict, runtime: str = "cpu") -> pd.DataFrame:
    """`throughput_rounds`-shaped rows: {model: [images/s per round]}."""
    return pd.DataFrame([{"model": m, "runtime": runtime, "images_per_s": v, "spread": 1.0, "round": r}
                         for m, values in speeds.items() for r, v in enumerate(values)])


def test_twice_as_fast_in_every_round_is_ratio_2_with_a_zero_width_interval():
    e = relative_speed(rounds_of({"a": [100, 60, 80, 120], "b": [50, 30, 40, 60]}), "a", "b", "cpu")
    assert (e.value, e.low, e.high) == pytest.approx((2.0, 2.0, 2.0))


def test_ratios_1_2_4_give_geometric_mean_2_and_the_t_interval_of_their_logs():
    e = relative_speed(rounds_of({"a": [10, 40, 20], "b": [10, 20, 5]}), "a", "b", "cpu")  # ratios 1, 2, 4
    # logs 0, ln 2, 2 ln 2: mean ln 2, standard deviation ln 2, so half-width t(0.975, 2) ln 2 / sqrt 3
    half = T_975_DF2 * math.log(2) / math.sqrt(3)
    assert (e.value, e.low, e.high) == pytest.approx((2.0, 2 * math.exp(-half), 2 * math.exp(half)))
    assert (e.low, e.high) == pytest.approx((0.3575, 11.19), rel=1e-3)


def test_relative_speed_pairs_rounds_and_needs_two_of_them():
    runs = rounds_of({"a": [20, 30, 99], "b": [10, 10]})  # round 2 timed only a: not a pair
    assert relative_speed(runs, "a", "b", "cpu").value == pytest.approx(math.sqrt(2 * 3))
    with pytest.raises(ValueError, match="at least 2 rounds"):
        relative_speed(rounds_of({"a": [20], "b": [10]}), "a", "b", "cpu")
    with pytest.raises(ValueError, match="at least 2 rounds"):
        relative_speed(runs, "a", "b", "onnx")


def test_relative_speed_by_hand():
    designs = paper_designs()
    assert designs[designs.baseline].model.tolist() == ["shvitlab_t6_ratio4_67", "shvitlab_fig6_partial"]
    # two rounds per model, the machine 10% slower in the first: the throughput is the median over rounds,
    # the relative speed the per-round ratio to the SHViT design of the experiment (the same in both rounds)
    runs = pd.DataFrame([{"model": m, "runtime": "cpu", "images_per_s": v * k, "spread": 1.0, "round": r}
                         for m, v in zip(TABLE6_MODELS + FIG6_MODELS, [50, 60, 55, 40, 30, 80, 70, 100])
                         for r, k in enumerate((0.9, 1.1))])
    table = speed_table(runs, designs).set_index("model")
    assert table.loc["shvitlab_t6_mhsa", "ours_img_s"] == pytest.approx(50)
    assert table.loc["shvitlab_t6_ratio4_67", "ours_rel"] == pytest.approx(1.0)
    assert table.loc["shvitlab_t6_mhsa", "ours_rel"] == pytest.approx(50 / 40)
    assert table.loc["shvitlab_fig6_full", "ours_rel"] == pytest.approx(70 / 100)
    assert table.loc["shvitlab_fig6_full", ["ours_rel_low", "ours_rel_high"]].tolist() == pytest.approx([0.7, 0.7])
    assert (table.rounds == 2).all()
    assert table.loc["shvitlab_t6_mhsa", "paper_rel"] == pytest.approx(50 / 62)  # paper CPU: 50 vs 62 img/s


def speed_with_rounds(mhsa_ratios, none_ratios, runtimes=("cpu",)):
    """A `speed_table` of Table 6 / Fig. 6 where MHSA and no attention run at the given per-round ratios to
    SHViT-S3 (100 img/s), and every other design at SHViT's speed."""
    speeds = {m: [100.0] * len(mhsa_ratios) for m in TABLE6_MODELS + FIG6_MODELS}
    speeds["shvitlab_t6_mhsa"] = [100.0 * r for r in mhsa_ratios]
    speeds["shvitlab_t6_none"] = [100.0 * r for r in none_ratios]
    runs = pd.concat([rounds_of(speeds, rt) for rt in runtimes])
    return speed_table(runs, paper_designs())


def test_speed_sentences_order_a_design_only_when_its_interval_excludes_1():
    mhsa = [0.5, 1.0, 2.0]  # geometric mean 1, wide interval
    none = [1.2, 1.25, 1.3]  # faster in every round, interval above 1
    table6, fig6 = speed_sentences(speed_with_rounds(mhsa, none))
    assert table6.startswith("Table 6 (S3) on CPU (PyTorch), speed relative to partial ratio 1/4.67 (SHViT-S3) "
                             "(geometric mean [95% t-interval] of 3 interleaved rounds, fewer than the 10 a speed "
                             "claim needs): ")
    assert "single head -> MHSA 1.00x [0.18, 5.59] (paper 0.81x)" in table6  # exp(+-t(0.975, 2) ln 2 / sqrt 3)
    assert "faster here: self-attention -> none (DWConv only)" in table6
    assert "the intervals of single head -> MHSA, partial ratio 1/8, partial ratio 1/2 include 1, so this host " \
           "does not order them against partial ratio 1/4.67 (SHViT-S3)" in table6
    assert "slower" not in table6
    assert table6.endswith("the paper's ratio lies outside our interval for self-attention -> none (DWConv only) "
                           "(0.98x), partial ratio 1/8 (0.92x), partial ratio 1/2 (0.90x).")
    assert "every interval includes 1, so this host does not order them" in fig6  # Fig. 6: no paper CPU numbers
    assert "paper" not in fig6


def test_speed_sentences_name_slower_designs_and_enough_rounds():
    rng = np.random.default_rng(0)
    slower = list(0.8 * np.exp(rng.normal(0, 0.01, 12)))
    (table6, _) = speed_sentences(speed_with_rounds(slower, [1.0] * 12))
    assert "(geometric mean [95% t-interval] of 12 interleaved rounds): " in table6
    assert "slower here: single head -> MHSA;" in table6
    assert "faster" not in table6


def test_accuracy_deltas_by_hand():
    designs = paper_designs()
    keys = ["m", "n", "r8", "b", "r2", "bo", "fu", "b"]
    micro = pd.DataFrame({"experiment": ["table6"] * 5 + ["fig6"] * 3, "key": keys,
                          "val_top1": [38.0, 39.0, 41.0, 40.0, 42.0, 37.0, 36.0, 40.0], "partial_ratio": 0.2})
    acc = accuracy_table(designs, micro).set_index("model")
    assert acc.loc["shvitlab_t6_mhsa", "micro_delta"] == pytest.approx(-2.0)
    assert acc.loc["shvitlab_fig6_full", "micro_delta"] == pytest.approx(-4.0)
    assert acc.loc["shvitlab_t6_mhsa", "paper_delta"] == pytest.approx(77.7 - 77.4)
