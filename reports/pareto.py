"""The Pareto front of (cost, gain) points: pure, no plotting, no pandas."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def front(cost: Sequence[float], gain: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (lower cost is better, higher gain is better).

    Point j dominates point i when cost[j] <= cost[i] and gain[j] >= gain[i], one of them strictly.
    Hence equal points do not dominate each other: every copy of a front point is on the front.
    A point with a missing (NaN) cost or gain is never on the front and dominates nothing.
    """
    cost = np.asarray(cost, dtype=float)
    gain = np.asarray(gain, dtype=float)
    if cost.shape != gain.shape or cost.ndim != 1:
        raise ValueError(f"cost and gain must be 1-d and of one length, got {cost.shape} and {gain.shape}")
    valid = ~(np.isnan(cost) | np.isnan(gain))
    c, g = cost[valid], gain[valid]
    # [j, i]: does j dominate i. Quadratic, which is fine: a sweep has at most a few thousand trials.
    no_worse = (c[:, None] <= c[None, :]) & (g[:, None] >= g[None, :])
    better = (c[:, None] < c[None, :]) | (g[:, None] > g[None, :])
    mask = np.zeros(cost.shape, dtype=bool)
    mask[valid] = ~(no_worse & better).any(axis=0)
    return mask
