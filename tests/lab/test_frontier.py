"""The Fig. 2 frontier: interpolation on log latency, the matched-accuracy estimate (known answers),
interleaved timing rounds, and the pieces the meso recipe adds (shift augmentation, tune split, clusters)."""
import math

import numpy as np
import pytest
import torch

from analysis.cost.timing import interleaved_rounds
from analysis.core.intervals import cluster_indices, seeded
from analysis.lab.datasets import ClutteredDigits, DigitsConfig
from analysis.lab.frontier import interpolate, matched_accuracy
from analysis.lab.augment import shift_images


def test_interpolation_is_linear_in_log_x_and_never_extrapolates():
    assert interpolate(2.0, [1.0, 4.0], [60.0, 80.0]) == pytest.approx(70.0)   # log 2 halfway from log 1 to log 4
    assert interpolate(2.0, [4.0, 1.0], [80.0, 60.0]) == pytest.approx(70.0)   # order of the points is irrelevant
    assert interpolate(4.0, [1.0, 2.0, 4.0], [1.0, 5.0, 9.0]) == pytest.approx(9.0)
    assert math.isnan(interpolate(5.0, [1.0, 4.0], [60.0, 80.0]))
    assert math.isnan(interpolate(0.5, [1.0, 4.0], [60.0, 80.0]))


def _correct(top1: float, seeds: int = 3, images: int = 200) -> np.ndarray:
    """[seeds, images] 0/1 with exactly `top1` % correct per seed (the same images each seed)."""
    row = (np.arange(images) < round(images * top1 / 100)).astype(float)
    return np.tile(row, (seeds, 1))


def test_matched_accuracy_known_answer_and_zero_width_without_noise():
    correct = {"small": _correct(60), "large": _correct(80), "base": _correct(65)}
    x = {"small": np.full(10, 1.0), "large": np.full(10, 4.0), "base": np.full(10, 2.0)}
    est = matched_accuracy(correct, x, ["small", "large"], "base", resamples=200)
    assert est.value == pytest.approx(5.0)            # 70 at x = 2, minus 65
    assert est.per_replicate == pytest.approx((5.0,) * 3)
    assert est.replicates == 3 and est.df == 2
    # the image bootstrap moves every model's accuracy: the interval is not empty, and it covers the value
    assert est.low <= 5.0 <= est.high


def test_matched_accuracy_counts_timing_rounds_and_refuses_to_extrapolate():
    rng = np.random.default_rng(0)
    correct = {"small": _correct(60), "large": _correct(80), "base": _correct(65)}
    noisy = {"small": 1.0 * np.exp(rng.normal(0, .05, 12)), "large": 4.0 * np.exp(rng.normal(0, .05, 12)),
             "base": 2.0 * np.exp(rng.normal(0, .05, 12))}
    steady = {k: np.full(12, math.exp(np.log(v).mean())) for k, v in noisy.items()}
    with_rounds = matched_accuracy(correct, noisy, ["small", "large"], "base", resamples=300)
    without = matched_accuracy(correct, steady, ["small", "large"], "base", resamples=300)
    assert with_rounds.value == pytest.approx(without.value)
    assert with_rounds.fixed_var > without.fixed_var     # round-to-round timing noise widens the interval
    out = matched_accuracy(correct, {**steady, "base": np.full(12, 8.0)}, ["small", "large"], "base")
    assert math.isnan(out.value) and "outside" in out.method


def test_interleaved_rounds_time_every_model_once_per_round():
    models = {"a": (torch.nn.Identity(), torch.zeros(1)), "b": (torch.nn.Linear(4, 4), torch.zeros(2, 4))}
    df = interleaved_rounds(models, rounds=3, passes=2)
    assert list(df.columns) == ["round", "name", "seconds", "device_name", "threads", "torch"]
    assert sorted(zip(df["round"], df["name"])) == [(r, n) for r in range(3) for n in ("a", "b")]
    assert (df.seconds > 0).all()


def test_shift_moves_each_image_by_at_most_an_eighth_and_keeps_what_stays_inside():
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 16, 16] = 1.0
    out = shift_images(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    ys, xs = (out[:, 0] == 1).nonzero()[:, 1:].T
    assert len(ys) == 64 and ((ys - 16).abs() <= 4).all() and ((xs - 16).abs() <= 4).all()  # 32 // 8 = 4 px
    assert len(set(zip(ys.tolist(), xs.tolist()))) > 10            # offsets differ between images
    again = shift_images(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)                                  # a seeded generator: reproducible
    assert torch.equal(shift_images(x[:, :, :7, :7], torch.Generator()), x[:, :, :7, :7])  # < 8 px: unchanged


def test_the_tune_split_shares_no_source_digit_with_train_or_val():
    cfg = DigitsConfig(resolution=32, num_train=400, num_val=200, num_tune=200, digit_size=(12, 20))
    train, val, tune = (set(ClutteredDigits(s, cfg).sources.tolist()) for s in ("train", "val", "tune"))
    assert train.isdisjoint(tune) and train.isdisjoint(val) and tune.isdisjoint(val)
    assert max(train) < min(tune) <= max(tune) < min(val)
    untuned = ClutteredDigits("train", DigitsConfig(resolution=32, num_train=400, digit_size=(12, 20)))
    assert max(untuned.sources.tolist()) > min(tune)   # without a tune split, train keeps those writers
    with pytest.raises(Exception, match="no tune split"):
        ClutteredDigits("tune", DigitsConfig(resolution=32))


def test_cluster_bootstrap_draws_whole_clusters_and_equals_the_plain_one_for_singletons():
    clusters = np.repeat([7, 3, 9], [2, 3, 1])
    idx = cluster_indices(clusters, 6, np.random.default_rng(1))
    drawn = np.bincount(idx, minlength=6)
    for c in (7, 3, 9):
        members = np.flatnonzero(clusters == c)
        assert len(set(drawn[members])) == 1                       # all of a cluster, or none, each time
    x = (np.random.default_rng(2).random((3, 50)) < .6).astype(float)
    plain = seeded(lambda a: a.mean(), x, resamples=300)
    single = seeded(lambda a: a.mean(), x, resamples=300, clusters=np.arange(50))
    assert single.fixed_var == pytest.approx(plain.fixed_var)
    paired = seeded(lambda a: a.mean(), np.repeat(x, 4, axis=1), resamples=300, clusters=np.repeat(np.arange(50), 4))
    assert paired.fixed_var == pytest.approx(plain.fixed_var, rel=0.25)  # 4 copies of each unit: one cluster each
