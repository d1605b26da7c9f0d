"""What the seed replicates give the figures and the scorecard: top-1 of every micro recipe with its
95% interval over seeds and val images, paired top-1 differences, and the per-layer head-similarity
and remove-one-head bands of the micro DeiTs (percentile bootstrap, `evidence.intervals`).

Inputs are the replicate tables of `lab.experiments` (`predictions_table`,
`head_similarity_images_table`, `ablation_images_table`), as DataFrames.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import not_a_command
from ..evidence.intervals import Estimate, bootstrap

__all__ = ["correct_matrix", "top1_intervals", "top1_difference", "similarity_array", "removed_correct",
           "head_bands"]


def correct_matrix(predictions: pd.DataFrame, key: str) -> np.ndarray:
    """[seeds, images]: 1.0 where the replicate of `key` trained from that seed classifies the image correctly."""
    p = predictions[predictions.key == key].sort_values(["seed", "image"])
    if p.empty:
        raise KeyError(f"no predictions of {key!r}")
    return (p.pred == p.label).to_numpy(float).reshape(p.seed.nunique(), -1)


def top1_intervals(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: top-1 (%, mean over seeds) with its 95% interval over seeds and images."""
    rows = []
    for key in predictions.key.unique():
        c = correct_matrix(predictions, key)
        e = bootstrap(lambda x: 100 * x.mean(), c, seeded=True)
        rows.append({"key": key, "top1": e.value, "top1_low": e.low, "top1_high": e.high, "seeds": c.shape[0],
                     "images": c.shape[1]})
    return pd.DataFrame(rows)


def top1_difference(predictions: pd.DataFrame, key: str, baseline: str) -> Estimate:
    """top-1 of `key` minus `baseline` (percentage points), seeds and (paired) images bootstrapped."""
    return bootstrap(lambda a, b: 100 * (a.mean() - b.mean()), correct_matrix(predictions, key),
                     correct_matrix(predictions, baseline), seeded=True)


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
            for column, e in (("similarity_pct", bootstrap(lambda s: s.mean(), sim[..., i], seeded=True)),
                              ("remove1_delta_pct", bootstrap(lambda r, b: 100 * (r.mean() - b.mean()),
                                                              removed[..., i], base, seeded=True))):
                rows.append({"key": key, "heads": heads, "layer": i + 1, "column": column, "value": e.value,
                             "low": e.low, "high": e.high, "seeds": sim.shape[0]})
    return pd.DataFrame(rows)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
