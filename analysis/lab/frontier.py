"""SHViT Fig. 2 as the paper draws it: each macro design as a speed-accuracy curve, not one model.

The meso sweep (`recipes.MESO_FAMILIES`) gives each design's members a measured CPU latency (one
thread, interleaved timing rounds: `sweep_latency`) and a trained top-1 over seeds. The paper's claim
is about the frontier: at the speed of the 4x4-stem design (a), the 16x16-stem design reaches a higher
accuracy. `matched_accuracy` reads the 16x16 family's accuracy at (a)'s latency (or training compute)
by linear interpolation on log latency between the two members that bracket it, minus (a)'s accuracy.

    >>> lat = sweep_latency(recipes, root=meso_root(), rounds=12)   # round, key, ms_per_image, ...
    >>> matched_accuracy(correct, latency_by_key, family, "meso_fig2_a", clusters=sources)   # Estimate (pp)
    >>> frontier_table(recipes, predictions, lat, sources)           # one row per model, intervals on both axes
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.errors import not_a_command
from ..core.paths import PathLike
from ..cost.timing import interleaved_rounds
from ..core.intervals import Estimate, cluster_indices, random_effect, seeded, t_interval
from .cache import forward_macs, load_or_train
from .recipes import MicroRecipe
from .replicates import correct_matrix
from .train import build_model

__all__ = ["sweep_latency", "training_curves", "interpolate", "matched_accuracy", "frontier_table",
           "LATENCY_BATCH"]

LATENCY_BATCH = 16  # images per timed forward pass


def sweep_latency(recipes: Mapping[str, MicroRecipe], *, root: Optional[PathLike] = None, rounds: int = 12,
                  batch_size: int = LATENCY_BATCH, passes: int = 3, progress: bool = True) -> pd.DataFrame:
    """CPU latency of each trained recipe ({key: recipe}, seed 0's weights) at its own resolution, one thread,
    in `rounds` interleaved rounds (`cost.timing.interleaved_rounds`). Columns round, key, seconds,
    device_name, threads, torch (`core.runtime.measured_on`), ms_per_image, batch_size, resolution."""
    gen = torch.Generator().manual_seed(0)
    models = {k: (load_or_train(r, root=root, progress=False)[0],
                  torch.randn(batch_size, 3, r.resolution, r.resolution, generator=gen)) for k, r in recipes.items()}
    df = interleaved_rounds(models, rounds, passes=passes, threads=1, progress=progress).rename(columns={"name": "key"})
    return df.assign(ms_per_image=1000 * df.seconds / batch_size, batch_size=batch_size,
                     resolution=[recipes[k].resolution for k in df.key])


def training_curves(replicates: Sequence[MicroRecipe], *, root: Optional[PathLike] = None) -> pd.DataFrame:
    """Per trained replicate and epoch: train loss and top-1, val loss and top-1, learning rate at the epoch's
    end (the history each cached checkpoint keeps). Columns key, seed, epoch, step, train_loss, train_top1,
    val_loss, val_top1, lr."""
    frames = []
    for r in replicates:
        history = load_or_train(r, root=root, progress=False)[1]["history"]
        frames.append(pd.DataFrame(history).assign(key=r.key, seed=r.seed))
    cols = ["key", "seed", "epoch", "step", "train_loss", "train_top1", "val_loss", "val_top1", "lr"]
    return pd.concat(frames, ignore_index=True)[cols]


def interpolate(x0: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """y at x0 on the piecewise-linear curve through (log x, y), sorted by x; NaN outside the curve's x range
    (no extrapolation)."""
    lx, order = np.log(np.asarray(xs, float)), np.argsort(xs)
    lx, y = lx[order], np.asarray(ys, float)[order]
    l0 = math.log(x0)
    return float(np.interp(l0, lx, y)) if lx[0] <= l0 <= lx[-1] else math.nan


def matched_accuracy(correct: Mapping[str, np.ndarray], x: Mapping[str, np.ndarray], family: Sequence[str],
                     baseline: str, *, clusters: Optional[np.ndarray] = None, resamples: int = 2000, seed: int = 0,
                     what: str = "latency") -> Estimate:
    """Top-1 (pp) of `family` interpolated at `baseline`'s x (`interpolate`, on log x), minus `baseline`'s.

    `correct`: {key: [seeds, images]} 0/1 correctness (the same val images for every key); `x`: {key: values}
    per timing round (paired rounds: round r of every key was timed together; the point is their geometric
    mean) or one deterministic value. Per seed s, the family's seed-s models give a curve and (a)'s seed-s
    model the baseline; the seeds are a random effect (`intervals.random_effect`), to which are added the
    bootstrap variance over images (whole `clusters` drawn, e.g. source digits) and over timing rounds.
    NaN where `baseline`'s x lies outside the family's range."""
    seeds, n = correct[baseline].shape
    xs = {k: np.asarray(v, float).reshape(-1) for k, v in x.items()}

    def point(v):
        return {k: float(np.exp(np.log(a).mean())) for k, a in v.items()}

    def per_seed(acc: Mapping[str, np.ndarray], xp: Mapping[str, float]) -> np.ndarray:
        return np.array([interpolate(xp[baseline], [xp[k] for k in family], [acc[k][s] for k in family])
                         - acc[baseline][s] for s in range(seeds)])

    acc = {k: 100 * correct[k].mean(1) for k in [*family, baseline]}
    x0 = point(xs)
    d = per_seed(acc, x0)
    if np.isnan(d).any():
        return Estimate(math.nan, math.nan, math.nan, f"{baseline}'s {what} lies outside the family's range")
    rng = np.random.default_rng(seed)
    v_images = np.var([per_seed({k: 100 * correct[k][:, idx].mean(1) for k in acc}, x0).mean()
                       for idx in (cluster_indices(clusters, n, rng) for _ in range(resamples))], ddof=1)
    rounds = max(len(a) for a in xs.values())
    v_rounds = 0.0
    if rounds > 1:
        boots = []
        for _ in range(resamples):
            idx = rng.integers(0, rounds, rounds)
            boots.append(per_seed(acc, point({k: a[idx] if len(a) == rounds else a for k, a in xs.items()})).mean())
        v_rounds = float(np.nanvar(boots, ddof=1))
    drawn = "images" if clusters is None else f"images clustered in {len(np.unique(clusters))} source digits"
    method = (f"interpolated on log {what}; seeds as a random effect: t over {seeds} seeds, {seeds - 1} df, "
              f"+ bootstrap over {n} {drawn}" + (f" and {rounds} timing rounds" if rounds > 1 else "")
              + f" ({resamples} resamples)")
    return random_effect(d, float(v_images) + v_rounds, method)


def frontier_table(recipes: Mapping[str, MicroRecipe], families: Mapping[str, Sequence[str]],
                   predictions: pd.DataFrame, latency: pd.DataFrame, *, clusters: Optional[np.ndarray] = None,
                   models: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """One row per member of `families` ({family: keys}): its latency (ms per image, geometric mean over
    timing rounds, 95% t-interval on log scale) and top-1 (%, mean over seeds, 95% interval with seeds as a
    random effect and images clustered by `clusters`), side by side with params, forward MACs, training
    compute (MACs x images seen), its tuned lr and augmentation, and (from `models`, the suite's models.csv)
    the mean training seconds."""
    rows = []
    for family, keys in families.items():
        for key in keys:
            r = recipes[key]
            ms = latency[latency.key == key].sort_values("round").ms_per_image.to_numpy()
            lat = t_interval(np.log(ms))
            top1 = seeded(lambda c: 100 * c.mean(), correct_matrix(predictions, key), clusters=clusters)
            macs = forward_macs(r)
            cfg = r.config()
            row = {"family": family, "key": key, "description": r.description, "resolution": r.resolution,
                   "params": sum(p.numel() for p in build_model(cfg, 10).parameters()), "macs": macs,
                   "training_macs": macs * r.train_images, "latency_ms": math.exp(lat.value),
                   "latency_low": math.exp(lat.low), "latency_high": math.exp(lat.high), "rounds": len(ms),
                   "top1": top1.value, "top1_low": top1.low, "top1_high": top1.high, "seeds": top1.replicates,
                   "lr": cfg.lr, "augment": cfg.augment}
            if models is not None:
                row["train_seconds_mean"] = float(models[models.key == key].train_seconds.mean())
            rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
