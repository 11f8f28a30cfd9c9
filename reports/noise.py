"""Decisions from seeds: paired differences against the baseline and a verdict at a margin.

Seed k of every setting starts from the weights, shards, batch order and augmentations of seed k of
the baseline (common random numbers), so a setting is compared seed by seed: the differences
d_k = acc_k(setting) - acc_k(baseline), in percentage points, their mean and sample sd, and
Student's t bounds on the mean difference with n - 1 degrees of freedom (the paired t test).

The verdict at margin M (percentage points) is the two one-sided tests of non-inferiority and
inferiority, as statsmodels' `ttost_paired` computes them, each at level ALPHA:
    non-inferior   the one-sided lower bound of the mean difference is above -M
    inferior       the one-sided upper bound is below -M
    undecided      neither (the interval [low, high] holds -M)
    noise unknown  fewer than 2 paired seeds
[low, high] is therefore the two-sided 1 - 2 ALPHA (90%) t interval.

Adaptive seeds look at the data after every seed from `min` to `max` and stop once decided. Each of
those K = max - min + 1 looks spends ALPHA / K (group-sequential, Bonferroni alpha spending): the
chance that any look wrongly says non-inferior is at most the sum, ALPHA, however the looks fall.
A fixed seed list is one look (K = 1).

Every function takes numbers or numpy arrays of per-seed values, never summaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # of each one-sided test
MARGIN_PP = 0.5  # PAPER.md's "< 0.5% accuracy loss"
LEVEL = 0.95  # of the interval of a mean (absolute accuracy)

NON_INFERIOR = "non-inferior"
INFERIOR = "inferior"
UNDECIDED = "undecided"
UNKNOWN = "noise unknown"
REFERENCE = "reference"  # the baseline against itself
VERDICTS = (NON_INFERIOR, UNDECIDED, INFERIOR, UNKNOWN)


@dataclass(frozen=True)
class Paired:
    """The paired comparison of one setting with its baseline over n common seeds (pp)."""

    n: int
    delta: float  # mean difference
    sd: float  # sample sd of the differences (NaN for n < 2)
    low: float  # one-sided (1 - alpha) lower bound of the mean difference (NaN for n < 2)
    high: float  # one-sided (1 - alpha) upper bound
    rho: float  # Pearson correlation of the two arms' per-seed accuracies (NaN for n < 3 or no spread)
    verdict: str


def t_quantile(dof, level: float = LEVEL):
    """The two-sided `level` quantile of Student's t with `dof` degrees of freedom (NaN for dof <= 0)."""
    dof = np.asarray(dof, dtype=float)
    with np.errstate(invalid="ignore"):
        return stats.t.ppf(0.5 + level / 2, np.where(dof > 0, dof, np.nan))


def mean_interval(values) -> tuple[float, float]:
    """(low, high): the LEVEL confidence interval of the mean of `values` (t, n - 1 dof); NaN for n < 2."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return np.nan, np.nan
    half = float(t_quantile(n - 1) * values.std(ddof=1) / np.sqrt(n))
    return float(values.mean()) - half, float(values.mean()) + half


def bounds(deltas, alpha: float = ALPHA) -> tuple[float, float]:
    """(low, high): the one-sided (1 - alpha) t bounds of the mean of paired differences; NaN for n < 2."""
    deltas = np.asarray(deltas, dtype=float)
    n = len(deltas)
    if n < 2:
        return np.nan, np.nan
    half = float(stats.t.ppf(1 - alpha, n - 1) * deltas.std(ddof=1) / np.sqrt(n))
    return float(deltas.mean()) - half, float(deltas.mean()) + half


def verdict(low: float, high: float, margin_pp: float = MARGIN_PP) -> str:
    """The verdict of a difference whose bounds are [low, high] (pp), at margin `margin_pp`."""
    if np.isnan(low) or np.isnan(high):
        return UNKNOWN
    if low > -margin_pp:
        return NON_INFERIOR
    if high < -margin_pp:
        return INFERIOR
    return UNDECIDED


def looks(seeds_min: int | None, seeds_max: int | None) -> int:
    """How many looks an adaptive seed plan takes (1 for a fixed seed list)."""
    if seeds_min is None or seeds_max is None:
        return 1
    return max(1, seeds_max - seeds_min + 1)


def paired(setting: dict[int, float], baseline: dict[int, float], margin_pp: float = MARGIN_PP,
           n_looks: int = 1) -> Paired:
    """Compare per-seed accuracies (seed -> fraction) over the seeds both have; differences in pp.
    With `n_looks` > 1 (adaptive seeds) each bound is taken at ALPHA / n_looks."""
    common = sorted(set(setting) & set(baseline))
    a = np.array([setting[s] for s in common], dtype=float) * 100
    b = np.array([baseline[s] for s in common], dtype=float) * 100
    d = a - b
    n = len(common)
    low, high = bounds(d, ALPHA / n_looks)
    rho = np.nan
    if n >= 3 and a.std() > 0 and b.std() > 0:
        rho = float(np.corrcoef(a, b)[0, 1])
    return Paired(n, float(d.mean()) if n else np.nan, float(d.std(ddof=1)) if n >= 2 else np.nan,
                  low, high, rho, verdict(low, high, margin_pp))


def decided(setting: dict[int, float], baseline: dict[int, float], margin_pp: float, n_looks: int) -> bool:
    """Whether adaptive seeds may stop: the comparison is non-inferior or inferior at this look."""
    return paired(setting, baseline, margin_pp, n_looks).verdict in (NON_INFERIOR, INFERIOR)
