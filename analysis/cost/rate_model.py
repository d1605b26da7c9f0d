"""How fast a kernel kind runs as a function of its features: an additive model in log space, corrected locally.

    >>> model = RateModel(features, log2_rate, weights)    # calibrated kernels of one kind
    >>> model(query)                                         # log2 rate at a kernel's features

The calibration times a few hundred kernels of a kind, at shapes drawn at random; a model's ops fall between
them. `RateModel` is what interpolates, in two parts:

1. an additive model of log2 rate (a product of efficiencies, one per feature, as a roofline's efficiency
   factors would be): every continuous feature enters through a piecewise-linear function with a knot at
   every whole log2 step of its range, every discrete feature (a flag, a kernel window, a stride) through an
   offset per value; fitted by ridge least squares (`RIDGE`), so that it is smooth and determined even where
   samples are few;
2. the residuals of the calibrated kernels nearest to the query (inverse-distance weighted, `weights` scaling
   each feature's distance), which bring back what the additive model misses locally (interactions: a small
   channel count hurts more at a large kernel window).

A feature is discrete when it takes at most `MAX_LEVELS` values among the samples. With `additive=False` the
first part is the mean alone, and a prediction is the weighted mean of its `neighbours` nearest samples: the
calibration's choice for kinds measured along one size axis (bytes-moving ops), between the two sizes around
a query.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.errors import not_a_command

__all__ = ["RateModel", "RIDGE", "MAX_LEVELS", "NEIGHBOURS"]

RIDGE = 0.1        # ridge penalty of the additive model's coefficients
MAX_LEVELS = 8     # a feature with at most this many distinct values is discrete
NEIGHBOURS = 6     # calibrated kernels whose residuals correct a prediction


class RateModel:
    """log2 rate of one kernel kind from its calibrated samples (see the module docstring)."""

    def __init__(self, features, log2_rate, weights: Sequence[float], *, additive: bool = True,
                 neighbours: int = NEIGHBOURS):
        self.x = np.asarray(features, dtype=float).reshape(len(log2_rate), -1)
        self.y = np.asarray(log2_rate, dtype=float)
        self.weights = np.asarray(weights, dtype=float)[:self.x.shape[1]]
        self.neighbours = neighbours
        self._columns = [self._column_basis(self.x[:, j]) for j in range(self.x.shape[1])] if additive else []
        design = self._design(self.x)
        penalty = RIDGE * np.eye(design.shape[1])
        penalty[0, 0] = 0.0   # the intercept is not shrunk
        self.beta = np.linalg.solve(design.T @ design + penalty, design.T @ self.y)
        self.residual = self.y - design @ self.beta

    @staticmethod
    def _column_basis(values: np.ndarray):
        levels = np.unique(values)
        if len(levels) <= MAX_LEVELS:
            return ("levels", levels)
        lo, hi = np.floor(values.min()), np.ceil(values.max())
        return ("knots", np.arange(lo, hi + 1.0))

    def _design(self, x: np.ndarray) -> np.ndarray:
        cols = [np.ones((len(x), 1))]
        for j, (kind, points) in enumerate(self._columns):
            v = x[:, j:j + 1]
            if kind == "levels":   # an offset per value but the first (nearest level for an unseen value)
                nearest = points[np.abs(v - points[None, :]).argmin(axis=1)]
                cols.append((nearest[:, None] == points[None, 1:]).astype(float))
            else:                  # hat functions on the knots, the value clamped to their range
                v = np.clip(v, points[0], points[-1])
                cols.append(np.maximum(0.0, 1.0 - np.abs(v - points[None, :])))
        return np.hstack(cols)

    def __call__(self, query: Sequence[float]) -> float:
        q = np.asarray(query, dtype=float)[:self.x.shape[1]]
        base = float((self._design(q[None, :]) @ self.beta)[0])
        d = np.sqrt((((self.x - q) * self.weights) ** 2).sum(axis=1))
        near = np.argsort(d, kind="stable")[:self.neighbours]
        w = 1.0 / (d[near] + 0.25) ** 2
        return base + float(np.dot(w, self.residual[near]) / w.sum())


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
