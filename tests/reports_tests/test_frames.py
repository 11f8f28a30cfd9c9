"""Runs -> frames: what counts as a trial, seed averaging, reduction factors and the 0.5 pp line."""

import math

import pytest

from reports import frames
from tests.reports_tests.runs import run


def test_trials_keep_finished_trial_runs_only_with_codec_and_setting_labels():
    runs = [run(), run("periodic", "fp8_e4m3", "fp8_e5m2", args={"period": 3}), run(status="FAILED"),
            run(role="study")]
    trials = frames.trials(runs)
    assert len(trials) == 2
    assert trials["codec"].tolist() == ["fp32/fp32", "fp8_e4m3/fp8_e5m2"]
    assert trials["setting"].tolist() == ["always", "periodic(period=3)"]
    assert trials["baseline"].tolist() == [True, False]
    assert trials["clients"].tolist() == [1, 1] and math.isnan(trials["train_subset"].iloc[0])


def test_a_run_without_a_study_tag_is_placed_in_a_cell_named_from_its_fields():
    r = run()
    del r["tags"]["study"]
    assert frames.trials([r])["study"].tolist() == ["vgg11-c2-clients1"]


def test_seeds_are_averaged_and_reductions_are_against_the_baseline():
    runs = [run(seed=0, acc=0.90, comm=100), run(seed=1, acc=0.92, comm=100),
            run("periodic", seed=0, acc=0.905, comm=25, flops=2.5e8, args={"period": 3}),
            run("periodic", seed=1, acc=0.905, comm=25, flops=2.5e8, args={"period": 3}),
            run("always", "fp8_e4m3", "fp8_e5m2", acc=0.80, comm=10)]
    s = frames.settings(frames.trials(runs)).set_index("setting", append=True)
    base = s[s["baseline"]].iloc[0]
    assert base["acc"] == pytest.approx(0.91) and base["seeds"] == 2 and base["acc_std"] == pytest.approx(0.01414, 1e-3)
    periodic = s.xs("periodic(period=3)", level="setting").iloc[0]
    assert periodic["comm_x"] == pytest.approx(4.0) and periodic["flops_x"] == pytest.approx(4.0)
    assert periodic["delta_pp"] == pytest.approx(-0.5) and periodic["within"]  # exactly 0.5 pp counts
    assert periodic["acc_std"] == 0 and periodic["seeds"] == 2
    fp8 = s[s["codec"] == "fp8_e4m3/fp8_e5m2"].iloc[0]
    assert fp8["comm_x"] == pytest.approx(10.0) and fp8["delta_pp"] == pytest.approx(-11.0) and not fp8["within"]


def test_a_cell_without_a_finished_baseline_has_no_reductions():
    s = frames.settings(frames.trials([run("periodic", comm=25, args={"period": 3}), run(status="FAILED")]))
    assert math.isnan(s["comm_x"].iloc[0]) and not s["within"].iloc[0]


def test_histories_are_tidy_and_cells_say_how_they_were_made():
    runs = [run(modes=(0, 1, 2)), run("periodic", args={"period": 3}, clients=5, study="other", modes=(0, 1, 2))]
    trials = frames.trials(runs)
    history = frames.histories(runs, trials)
    assert sorted(history["metric"].unique()) == ["mode", "test/acc"]
    assert history[history["metric"] == "mode"].groupby("run_id")["value"].apply(list).tolist() == [[0, 1, 2]] * 2
    cells = frames.cells(trials)
    assert cells["title"].tolist() == ["vgg11, cut 2 · 1 client · cifar10 · 3 epochs",
                                       "vgg11, cut 2 · 5 clients · cifar10 · 3 epochs"]
    assert cells[["git_commit", "seeds", "device"]].iloc[0].tolist() == ["abc123", "0", "cpu"]
