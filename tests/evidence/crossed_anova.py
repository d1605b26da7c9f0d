"""An independent interval for a mean over a crossed seed x image design, for the tests: the
method-of-moments (ANOVA) variance components of y[s, i] = mu + a_s + b_i + e_si and a
Satterthwaite t-interval on the grand mean. Shares no code with `analysis.core.intervals`."""
import math

import numpy as np
from scipy import stats


def variance_components(y: np.ndarray) -> tuple[float, float, float]:
    """(sigma_seed, sigma_image, sigma_residual) of a [seeds, images] table (negative estimates -> 0)."""
    s, n = y.shape
    g, rows, cols = y.mean(), y.mean(1), y.mean(0)
    ms_seed = n * ((rows - g) ** 2).sum() / (s - 1)
    ms_image = s * ((cols - g) ** 2).sum() / (n - 1)
    resid = y - rows[:, None] - cols[None, :] + g
    ms_resid = (resid ** 2).sum() / ((s - 1) * (n - 1))
    return (math.sqrt(max(ms_seed - ms_resid, 0) / n), math.sqrt(max(ms_image - ms_resid, 0) / s),
            math.sqrt(ms_resid))


def anova_interval(y: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): var(mean) = (MS_seed + MS_image - MS_resid) / (S n), Satterthwaite df."""
    s, n = y.shape
    g, rows, cols = y.mean(), y.mean(1), y.mean(0)
    ms = [n * ((rows - g) ** 2).sum() / (s - 1), s * ((cols - g) ** 2).sum() / (n - 1)]
    resid = y - rows[:, None] - cols[None, :] + g
    ms_resid = (resid ** 2).sum() / ((s - 1) * (n - 1))
    terms = [(ms[0], s - 1), (ms[1], n - 1), (-ms_resid, (s - 1) * (n - 1))]
    var = max(sum(m for m, _ in terms), ms[0]) / (s * n)      # never below the seed term alone
    df = max(1.0, (s * n * var) ** 2 / sum(m ** 2 / d for m, d in terms))
    half = stats.t.ppf((1 + level) / 2, df) * math.sqrt(var)
    return float(g), float(g - half), float(g + half)
