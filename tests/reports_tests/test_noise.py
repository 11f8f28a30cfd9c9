"""Confidence intervals from seed summaries, against values worked out by hand."""

import math

import numpy as np
import pytest

from reports import noise

T_2 = 4.302652729749464  # t_{0.975, 2}, from a t table
T_3 = 3.182446305284263  # t_{0.975, 3}


def test_t_quantiles_are_the_tables_and_undefined_without_degrees_of_freedom():
    assert noise.t_quantile(2) == pytest.approx(T_2, abs=1e-12)
    assert noise.t_quantile(3) == pytest.approx(T_3, abs=1e-12)
    assert math.isnan(noise.t_quantile(0))


def test_the_interval_of_a_mean_of_three_seeds():
    # 0.90, 0.92, 0.94: mean 0.92, sample std sqrt((0.02^2 + 0 + 0.02^2) / 2) = 0.02
    low, high = noise.mean_interval(0.92, 0.02, 3)
    half = T_2 * 0.02 / math.sqrt(3)  # 0.0496828
    assert (low, high) == pytest.approx((0.92 - half, 0.92 + half), abs=1e-12)
    assert (low, high) == pytest.approx((0.870317, 0.969683), abs=1e-6)


def test_one_seed_has_no_interval_and_its_noise_is_unknown():
    assert all(math.isnan(v) for v in noise.mean_interval(0.9, math.nan, 1))
    low, high = noise.welch(0.9, math.nan, 1, 0.92, 0.01, 3)
    assert math.isnan(low) and math.isnan(high)
    assert noise.verdict(low, high) == noise.UNKNOWN


def test_welch_interval_with_unequal_variances():
    # a: 3 seeds, variance 6e-4 -> s^2/n = 2e-4; b: 2 seeds, variance 2e-4 -> s^2/n = 1e-4.
    # dof = (2e-4 + 1e-4)^2 / ((2e-4)^2 / 2 + (1e-4)^2 / 1) = 9e-8 / 3e-8 = 3
    # half width = t_{0.975,3} * sqrt(3e-4) = 3.182446 * 0.0173205 = 0.0551216
    low, high = noise.welch(0.90, math.sqrt(6e-4), 3, 0.92, math.sqrt(2e-4), 2)
    assert (low, high) == pytest.approx((-0.02 - T_3 * math.sqrt(3e-4), -0.02 + T_3 * math.sqrt(3e-4)), abs=1e-12)
    assert (low, high) == pytest.approx((-0.0751216, 0.0351216), abs=1e-7)
    assert noise.verdict(low, high) == noise.WITHIN


def test_verdicts_follow_the_sign_of_the_interval():
    assert noise.verdict([-3, 1, -1, 0], [-1, 2, 1, 0]).tolist() == [noise.LOSS, noise.GAIN, noise.WITHIN, noise.WITHIN]


def test_two_samples_without_spread_give_the_difference_itself():
    assert noise.welch(0.9, 0.0, 2, 0.8, 0.0, 3) == pytest.approx((0.1, 0.1))


def test_pooling_groups_equals_computing_from_every_value():
    # {0.90} and {0.91, 0.93} (mean 0.92, std sqrt(2e-4)) -> {0.90, 0.91, 0.93}:
    # mean 0.913333, deviations -0.013333, -0.003333, 0.016667 -> sum of squares 4.6667e-4 -> std sqrt(2.3333e-4)
    n, mean, std = noise.pooled([1, 2], [0.90, 0.92], [math.nan, math.sqrt(2e-4)])
    assert n == 3 and mean == pytest.approx(0.9133333, abs=1e-7) and std == pytest.approx(math.sqrt(7e-4 / 3))
    assert std == pytest.approx(np.std([0.90, 0.91, 0.93], ddof=1))
