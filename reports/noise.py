"""The spread over seeds: confidence intervals of a mean and of a difference of means, from
summaries (mean, sample standard deviation, number of seeds), never from raw values.

Every function takes numbers or numpy arrays and is NaN where the noise is unknown: one seed
(n < 2) on any side, or a missing standard deviation.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

LEVEL = 0.95

# Verdicts of a difference to the baseline, from its confidence interval.
WITHIN = "within the noise"
LOSS = "real loss"
GAIN = "real gain"
UNKNOWN = "noise unknown"


def t_quantile(dof):
    """The two-sided LEVEL quantile of Student's t with `dof` degrees of freedom (NaN for dof <= 0)."""
    dof = np.asarray(dof, dtype=float)
    with np.errstate(invalid="ignore"):
        return stats.t.ppf(0.5 + LEVEL / 2, np.where(dof > 0, dof, np.nan))


def mean_interval(mean, std, n):
    """(low, high): the LEVEL confidence interval of a mean of `n` values, t-distribution, n - 1 dof."""
    mean, std, n = (np.asarray(v, dtype=float) for v in (mean, std, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = t_quantile(n - 1) * std / np.sqrt(n)
    return mean - half, mean + half


def welch(mean_a, std_a, n_a, mean_b, std_b, n_b):
    """(low, high): Welch's LEVEL confidence interval of mean_a - mean_b (unequal variances,
    Welch-Satterthwaite degrees of freedom). Two samples without any spread give the point itself."""
    mean_a, std_a, n_a, mean_b, std_b, n_b = (np.asarray(v, dtype=float)
                                              for v in (mean_a, std_a, n_a, mean_b, std_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b = std_a**2 / n_a, std_b**2 / n_b
        known = (n_a >= 2) & (n_b >= 2) & ~np.isnan(a + b)
        dof = (a + b) ** 2 / (a**2 / (n_a - 1) + b**2 / (n_b - 1))
        half = np.where(a + b == 0, 0.0, t_quantile(dof) * np.sqrt(a + b))
    half = np.where(known, half, np.nan)
    delta = mean_a - mean_b
    return delta - half, delta + half


def verdict(low, high) -> np.ndarray:
    """Words for a difference's interval: a LOSS or GAIN when it excludes 0, else WITHIN; UNKNOWN where NaN."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    words = np.where(high < 0, LOSS, np.where(low > 0, GAIN, WITHIN))
    return np.where(np.isnan(low) | np.isnan(high), UNKNOWN, words)


def pooled(n, mean, std) -> tuple[float, float, float]:
    """(n, mean, sample std) of the union of groups given by their (n, mean, sample std): exact,
    as if computed from every value. A group of one value has no std (NaN counts as 0 there)."""
    n, mean, std = (np.asarray(v, dtype=float) for v in (n, mean, std))
    total = n.sum()
    grand = (n * mean).sum() / total
    within = np.where(n > 1, (n - 1) * std**2, 0.0)
    squares = (within + n * (mean - grand) ** 2).sum()
    return total, grand, float(np.sqrt(squares / (total - 1))) if total > 1 else np.nan
