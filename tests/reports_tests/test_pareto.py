"""The Pareto front: lower cost and higher gain are better."""

import math

import numpy as np
import pytest

from reports.pareto import front


def test_dominated_points_are_left_out():
    cost = [1, 2, 3, 4, 2.5]
    gain = [0.5, 0.7, 0.9, 0.8, 0.6]  # (4, 0.8) is beaten by (3, 0.9); (2.5, 0.6) by (2, 0.7)
    assert front(cost, gain).tolist() == [True, True, True, False, False]


def test_equal_cost_keeps_only_the_higher_gain_and_equal_gain_only_the_lower_cost():
    assert front([1, 1], [0.4, 0.5]).tolist() == [False, True]
    assert front([1, 2], [0.5, 0.5]).tolist() == [True, False]


def test_identical_points_are_all_on_the_front():
    assert front([1, 1, 2], [0.5, 0.5, 0.4]).tolist() == [True, True, False]


def test_a_single_point_and_no_points():
    assert front([7.0], [0.1]).tolist() == [True]
    assert front([], []).tolist() == []


def test_missing_values_are_never_on_the_front_and_dominate_nothing():
    cost = [math.nan, 1, 2, 3]
    gain = [0.99, math.nan, 0.5, 0.4]
    assert front(cost, gain).tolist() == [False, False, True, False]
    assert front([math.nan], [math.nan]).tolist() == [False]


def test_infinite_cost_is_a_real_point():
    assert front([np.inf, 1], [0.9, 0.5]).tolist() == [True, True]


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="one length"):
        front([1, 2], [0.5])
