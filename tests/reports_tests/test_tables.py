"""The headline table: the largest non-inferior reductions beside PAPER.md's rule on means, and the
paper's figures where the cell matches."""

import math

import pytest

from reports import frames, noise, tables
from tests.reports_tests.runs import run, settings, trial

BASE = (0.91, 0.93, 0.92)  # the baseline's three seeds


def headline(runs, margin_pp=noise.MARGIN_PP):
    return tables.headline(settings(runs, margin_pp), frames.cells(frames.trials(runs)))


def tracking(deltas, policy="periodic", up="fp8_e4m3", down="fp8_e5m2", **fields):
    """A trial whose seed k reaches the baseline's seed k plus deltas[k] pp."""
    return trial(policy, up, down, accs=tuple(b + d / 100 for b, d in zip(BASE, deltas)), **fields)


def test_the_paper_rule_on_means_picks_the_largest_reductions_within_half_a_point():
    runs = [run(acc=0.90, comm=100, flops=1e9),
            run("periodic", "fp8_e4m3", "fp8_e5m2", acc=0.897, comm=5, flops=5e8, args={"period": 3}),
            run("loss_threshold", acc=0.899, comm=50, flops=1e8, args={"threshold": 0.1}),
            run("periodic", "fp8_e4m3", "fp8_e5m2", acc=0.85, comm=1, flops=1e7, args={"period": 9})]  # too lossy
    row = headline(runs).iloc[0]
    assert row["baseline_acc"] == 0.90 and row["baseline_seeds"] == 1
    best_comm = (row["comm_mean_rule_x"], row["comm_mean_rule_setting"])
    assert best_comm == (20.0, "periodic(period=3)")
    assert round(row["comm_mean_rule_delta_pp"], 6) == -0.3 and row["comm_mean_rule_verdict"] == noise.UNKNOWN
    assert (row["flops_mean_rule_x"], row["flops_mean_rule_setting"]) == (10.0, "loss_threshold(threshold=0.1)")
    # One seed each: nothing can be shown non-inferior.
    assert math.isnan(row["comm_x"]) and row["comm_setting"] == "" and row["comm_verdict"] == ""
    assert math.isnan(row["comm_paired_ci_low"]) and math.isnan(row["baseline_ci_low"])


def test_only_the_baseline_within_reach_gives_no_factor():
    row = headline([*trial(accs=BASE), *tracking((-9, -10, -11), comm=1, args={"period": 3})]).iloc[0]
    assert math.isnan(row["comm_x"]) and math.isnan(row["comm_mean_rule_x"]) and row["comm_mean_rule_setting"] == ""


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


def test_each_reduction_carries_its_paired_difference_interval_verdict_and_seeds():
    runs = [*trial(accs=BASE, comm=100, flops=1e9),
            *tracking((-0.10, 0.05, 0.02), comm=20, flops=1e9, args={"period": 3}),
            *tracking((0.18, 1.53, 0.05), policy="loss_threshold", up="fp32", down="fp32", comm=50, flops=1e8,
                      args={"threshold": 0.1})]
    row = headline(runs).iloc[0]
    # -0.01 pp, sd 0.0794: -0.01 -/+ 2.919986 * 0.079373 / sqrt(3) = -0.01 -/+ 0.133812
    assert (row["comm_x"], row["comm_setting"], row["comm_codec"]) == (5.0, "periodic(period=3)", "fp8_e4m3/fp8_e5m2")
    assert row["comm_paired_delta_pp"] == pytest.approx(-0.01, abs=1e-9)
    assert (row["comm_paired_ci_low"], row["comm_paired_ci_high"]) == pytest.approx((-0.143812, 0.123812), abs=1e-5)
    assert (row["comm_verdict"], row["comm_seeds"], row["margin_pp"]) == (noise.NON_INFERIOR, 3, 0.5)
    # loss_threshold is 10x cheaper in FLOPs and within on means, but undecided (test_noise's worked example):
    # periodic, at 1x, is the only non-inferior one.
    assert (row["flops_x"], row["flops_setting"]) == (1.0, "periodic(period=3)")
    assert (row["flops_mean_rule_x"], row["flops_mean_rule_setting"]) == (10.0, "loss_threshold(threshold=0.1)")
    assert row["flops_mean_rule_verdict"] == noise.UNDECIDED
    assert row["baseline_seeds"] == 3
    assert row["baseline_ci_low"] == pytest.approx(0.92 - 4.302652729749464 * 0.01 / math.sqrt(3))  # t_{0.975,2}


def test_the_headline_is_the_largest_non_inferior_reduction_not_the_largest_within_on_means():
    runs = [*trial(accs=BASE, comm=100),
            # 25x: mean -0.3 pp, within 0.5 pp on means, but its seeds disagree by 2 pp: undecided
            *tracking((-1.3, 0.7, -0.3), comm=4, args={"period": 9}),
            # 10x: mean -0.35 pp, within, and tight (lower bound -0.35 - 2.92 * 0.05 / sqrt(3) = -0.434): non-inferior
            *tracking((-0.30, -0.35, -0.40), comm=10, args={"period": 5}),
            # 5x: mean +0.2 pp, tight: non-inferior, but a smaller reduction
            *tracking((0.15, 0.20, 0.25), comm=20, args={"period": 3}),
            # 50x: -2 pp: inferior, on either rule
            *tracking((-2.1, -2.0, -1.9), comm=2, args={"period": 20})]
    row = headline(runs).iloc[0]
    assert (row["comm_x"], row["comm_setting"], row["comm_verdict"]) == (10.0, "periodic(period=5)", noise.NON_INFERIOR)
    assert row["comm_paired_delta_pp"] == pytest.approx(-0.35)
    assert row["comm_paired_ci_low"] == pytest.approx(-0.434, abs=1e-3)
    assert (row["comm_mean_rule_x"], row["comm_mean_rule_setting"]) == (25.0, "periodic(period=9)")
    assert row["comm_mean_rule_delta_pp"] == pytest.approx(-0.3) and row["comm_mean_rule_verdict"] == noise.UNDECIDED
    # At a margin of 3 pp the wide one is non-inferior too, and so is the 2 pp loss.
    wide = headline(runs, margin_pp=3.0).iloc[0]
    assert (wide["comm_x"], wide["comm_setting"], wide["margin_pp"]) == (50.0, "periodic(period=20)", 3.0)


def test_with_one_seed_the_noise_is_unknown_and_nothing_is_non_inferior():
    row = headline([run(acc=0.90), run("periodic", acc=0.899, comm=5, args={"period": 3})]).iloc[0]
    assert math.isnan(row["comm_x"]) and row["comm_verdict"] == ""
    assert (row["comm_mean_rule_x"], row["comm_mean_rule_verdict"]) == (20.0, noise.UNKNOWN)
    assert math.isnan(row["baseline_ci_low"])
