"""The headline table: the largest reductions within 0.5 pp, and the paper's figures where the cell matches."""

import math

import pytest

from reports import frames, tables
from tests.reports_tests.runs import run, trial


def headline(runs):
    trials = frames.trials(runs)
    return tables.headline(frames.settings(trials), frames.cells(trials))


def test_the_largest_reductions_within_half_a_point_each_with_who_achieved_them():
    runs = [run(acc=0.90, comm=100, flops=1e9),
            run("periodic", "fp8_e4m3", "fp8_e5m2", acc=0.897, comm=5, flops=5e8, args={"period": 3}),
            run("loss_threshold", acc=0.899, comm=50, flops=1e8, args={"threshold": 0.1}),
            run("periodic", "fp8_e4m3", "fp8_e5m2", acc=0.85, comm=1, flops=1e7, args={"period": 9})]  # too lossy
    row = headline(runs).iloc[0]
    assert row["baseline_acc"] == 0.90 and row["baseline_seeds"] == 1
    best_comm = (row["comm_x"], row["comm_setting"], row["comm_codec"])
    assert best_comm == (20.0, "periodic(period=3)", "fp8_e4m3/fp8_e5m2")
    assert round(row["comm_delta_pp"], 6) == -0.3
    best_flops = (row["flops_x"], row["flops_setting"], row["flops_codec"])
    assert best_flops == (10.0, "loss_threshold(threshold=0.1)", "fp32/fp32")


def test_only_the_baseline_within_reach_gives_a_factor_of_one():
    row = headline([run(acc=0.9), run("periodic", acc=0.5, comm=1, args={"period": 3})]).iloc[0]
    assert row["comm_x"] == 1.0 and row["comm_setting"] == "always"


def test_no_finished_baseline_gives_no_factor():
    row = headline([run("periodic", args={"period": 3})]).iloc[0]
    assert math.isnan(row["comm_x"]) and math.isnan(row["baseline_acc"]) and row["comm_setting"] == ""


def test_paper_figures_sit_beside_matching_cells_with_what_differs():
    runs = [run(model="vgg11", clients=5, study="a"), run(model="resnet18", study="b"),
            run(model="smallcnn", study="c")]
    head = headline(runs).set_index("study")
    assert head.loc["a", ["paper_comm", "paper_compute"]].tolist() == ["11.9x", "not published"]
    assert head.loc["b", ["paper_comm", "paper_compute"]].tolist() == ["1.64x-106.7x", "2.86x-32.1x"]
    assert head.loc["c", "paper_comm"] == ""
    assert head.loc["a", "differences"] == "3 epochs (paper: 200)"


def test_differences_name_data_epochs_and_scale():
    cell = frames.cells(frames.trials([run()])).iloc[0].copy()
    cell[["dataset", "epochs", "train_subset", "width"]] = ["synthetic", 200, 400, 0.25]
    assert tables.differences(cell) == ("synthetic data (paper: CIFAR-10); 400 training images (paper: 50,000); "
                                        "width x0.25 (paper: full width)")


def test_each_reduction_carries_its_difference_with_welch_interval_and_verdict():
    d = math.sqrt(6e-4)  # as in test_frames: Welch's dof is exactly 3, half width 5.51216 pp
    runs = [*trial(accs=(0.91, 0.93), comm=100, flops=1e9),
            *trial("periodic", accs=(0.917 - d, 0.917, 0.917 + d), comm=20, flops=1e9, args={"period": 3}),
            *trial("loss_threshold", accs=(0.921 - d, 0.921, 0.921 + d), comm=50, flops=1e8,
                   args={"threshold": 0.1})]
    row = headline(runs).iloc[0]
    half = 3.182446305284263 * math.sqrt(3e-4) * 100
    assert (row["comm_x"], row["comm_setting"], row["comm_verdict"]) == (5.0, "periodic(period=3)", "within the noise")
    assert row["comm_delta_pp"] == pytest.approx(-0.3)
    assert (row["comm_delta_ci_low"], row["comm_delta_ci_high"]) == pytest.approx((-0.3 - half, -0.3 + half))
    assert (row["flops_x"], row["flops_delta_pp"]) == pytest.approx((10.0, 0.1))
    assert row["flops_delta_ci_low"] == pytest.approx(0.1 - half) and row["flops_verdict"] == "within the noise"
    assert row["baseline_seeds"] == 2 and row["baseline_ci_low"] == pytest.approx(0.92 - 12.706204736 * 0.01, abs=1e-8)


def test_with_one_seed_the_noise_is_unknown_not_zero():
    row = headline([run(acc=0.90), run("periodic", acc=0.899, comm=5, args={"period": 3})]).iloc[0]
    assert row["comm_x"] == 20.0 and row["comm_verdict"] == "noise unknown"
    assert math.isnan(row["comm_delta_ci_low"]) and math.isnan(row["comm_delta_ci_high"])
    assert math.isnan(row["baseline_ci_low"])
