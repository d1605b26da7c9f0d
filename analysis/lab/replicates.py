"""What the seed replicates give the figures and the scorecard: top-1 of every micro recipe with its
95% interval over seeds and val images, paired top-1 differences, the per-layer head-similarity
and remove-one-head bands of the micro DeiTs (seeds as a random effect, `core.intervals.seeded`),
and the cross-fitted remove-one-head estimate (the head chosen on other images than it is scored on).

Inputs are the replicate tables of `lab.experiments` (`predictions_table`,
`head_similarity_images_table`, `ablation_images_table`), as DataFrames.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import UserError, not_a_command
from ..core.intervals import Estimate, seeded

__all__ = ["correct_matrix", "top1_intervals", "top1_difference", "similarity_array", "removed_correct",
           "removed_all_heads", "crossfit_remove_one", "head_bands"]


def correct_matrix(predictions: pd.DataFrame, key: str) -> np.ndarray:
    """[seeds, images]: 1.0 where the replicate of `key` trained from that seed classifies the image correctly."""
    p = predictions[predictions.key == key].sort_values(["seed", "image"])
    if p.empty:
        raise UserError(f"no predictions of {key!r}; the table holds {sorted(predictions.key.unique())}")
    return (p.pred == p.label).to_numpy(float).reshape(p.seed.nunique(), -1)


def top1_intervals(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: top-1 (%, mean over seeds) with its 95% interval over seeds and images."""
    rows = []
    for key in predictions.key.unique():
        c = correct_matrix(predictions, key)
        e = seeded(lambda x: 100 * x.mean(), c)
        rows.append({"key": key, "top1": e.value, "top1_low": e.low, "top1_high": e.high, "seeds": c.shape[0],
                     "images": c.shape[1]})
    return pd.DataFrame(rows)


def top1_difference(predictions: pd.DataFrame, key: str, baseline: str) -> Estimate:
    """top-1 of `key` minus `baseline` (percentage points), seeds (paired by seed) as a random effect, images paired."""
    return seeded(lambda a, b: 100 * (a.mean() - b.mean()), correct_matrix(predictions, key),
                  correct_matrix(predictions, baseline))


def similarity_array(similarity: pd.DataFrame, key: str) -> np.ndarray:
    """[seeds, images, layers]: mean pairwise head-map cosine (%) per image of the micro DeiT `key`."""
    s = similarity[similarity.key == key].sort_values(["seed", "image", "layer"])
    return s.similarity_pct.to_numpy().reshape(s.seed.nunique(), s.image.nunique(), s.layer.nunique())


def removed_correct(ablation: pd.DataFrame, predictions: pd.DataFrame, key: str) -> np.ndarray:
    """[seeds, images, layers]: 1.0 where the replicate, with its least useful head of that layer
    removed, still classifies the image correctly."""
    a = ablation[ablation.key == key].sort_values(["seed", "image", "layer"])
    seeds, layers = a.seed.nunique(), a.layer.nunique()
    p = predictions[(predictions.key == key) & (predictions.seed == a.seed.min())].sort_values("image")
    labels = np.tile(np.repeat(p.label.to_numpy(), layers), seeds)          # seed, image, layer order
    return (a.pred.to_numpy() == labels).astype(float).reshape(seeds, len(p), layers)


def removed_all_heads(ablation_heads: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(removed [seeds, images, layers, heads], intact [seeds, images]): 1.0 where the replicate, with that one
    head of that layer removed (or intact), classifies the image correctly; both from the same weights
    (`experiments.ablation_heads_images_table`)."""
    a = ablation_heads[ablation_heads.key == key].sort_values(["seed", "image", "layer", "head"])
    if a.empty:
        raise UserError(f"no all-heads ablation of {key!r}; the table holds {sorted(ablation_heads.key.unique())}")
    seeds, images, layers, heads = (a[c].nunique() for c in ("seed", "image", "layer", "head"))
    removed = (a.pred == a.label).to_numpy(float).reshape(seeds, images, layers, heads)
    intact = (a.intact_pred == a.label).to_numpy(float).reshape(seeds, images, layers, heads)[..., 0, 0]
    return removed, intact


def crossfit_remove_one(removed: np.ndarray, intact: np.ndarray, fold: np.ndarray, folds: int = 2) -> float:
    """Top-1 change (pp) from removing, per layer, the head whose removal costs least, chosen out of sample:
    for each fold, the head is chosen on the other folds' images and scored on this fold's; mean over
    layers. `removed` [images, layers, heads] and `intact` [images] are 0/1 correctness, `fold` [images]
    each image's fold (an image and its bootstrap copies stay in one fold)."""
    changes = np.zeros(removed.shape[1])
    for f in range(folds):
        score, choose = fold == f, fold != f
        if not score.any() or not choose.any():
            continue
        best = removed[choose].mean(0).argmax(-1)                            # [layers]
        kept = removed[score][:, np.arange(removed.shape[1]), best]          # [images in fold, layers]
        changes += kept.sum(0) - intact[score].sum()
    return float(100 * changes.mean() / len(intact))


def head_bands(similarity: pd.DataFrame, ablation: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Per micro DeiT and layer: similarity (%) and the best remove-1 top-1 change (pp), each the mean
    over seeds with its 95% interval (`column`, `value`, `low`, `high`)."""
    rows = []
    for key in similarity.key.unique():
        heads = int(similarity[similarity.key == key].heads.iloc[0])
        sim = similarity_array(similarity, key)
        removed = removed_correct(ablation, predictions, key)
        base = correct_matrix(predictions, key)
        for i in range(sim.shape[-1]):
            for column, e in (("similarity_pct", seeded(lambda s: s.mean(), sim[..., i])),
                              ("remove1_delta_pct", seeded(lambda r, b: 100 * (r.mean() - b.mean()),
                                                           removed[..., i], base))):
                rows.append({"key": key, "heads": heads, "layer": i + 1, "column": column, "value": e.value,
                             "low": e.low, "high": e.high, "seeds": sim.shape[0]})
    return pd.DataFrame(rows)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
