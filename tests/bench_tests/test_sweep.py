"""`python -m bench sweep` end to end on local SQLite stores: trials, runs, resume, failures, kills."""

import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from bench import spec as specs
from tests.conftest import ROOT, run_cli

SMOKE_STUDIES = ["smoke/smallcnn-c1", "smoke/smallcnn-c2"]


def studies(storage):
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
            for s in optuna.get_all_study_summaries(storage)}


def child_runs(client, sweep):
    exp = client.get_experiment_by_name(sweep)
    return client.search_runs([exp.experiment_id], "tags.`splitbench.role` = 'trial'")


def assert_each_finished_trial_has_one_run(trials_by_study, runs, n_trials):
    """The contract the reports rely on: one active child run per finished trial, none for others."""
    finished = {(study, t.number) for study, trials in trials_by_study.items() for t in trials
                if t.state == TrialState.COMPLETE or t.user_attrs.get("failure", "").startswith("diverged")}
    assert {study: sum(s == study for s, _ in finished) for study in trials_by_study} == {
        study: n_trials for study in trials_by_study}
    tagged = [(r.data.tags["study"], int(r.data.tags["trial"])) for r in runs]
    assert sorted(tagged) == sorted(finished)  # each exactly once


def test_smoke_sweep_logs_every_trial_under_its_study_and_a_rerun_adds_nothing(tmp_path):
    out = run_cli(["sweep", "--spec", "smoke"], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = studies(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert sorted(trials) == SMOKE_STUDIES
    for study in SMOKE_STUDIES:
        assert [t.state for t in trials[study]] == [TrialState.COMPLETE] * 3
        # the baseline is every study's first trial
        assert trials[study][0].params == {"policy": "always", "quant_up": "fp32", "quant_down": "fp32"}
        assert all(t.values[0] > 0.3 for t in trials[study])  # well above chance (10%)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    parents = client.search_runs([exp.experiment_id], "tags.`splitbench.role` = 'study'")
    assert sorted(p.info.run_name for p in parents) == SMOKE_STUDIES
    assert {p.info.status for p in parents} == {"FINISHED"}
    parent = {p.data.tags["study"]: p for p in parents}
    assert parent["smoke/smallcnn-c2"].data.params["clients"] == "2"
    assert parent["smoke/smallcnn-c2"].data.params["dataset"] == "synthetic"
    runs = child_runs(client, "smoke")
    assert_each_finished_trial_has_one_run(trials, runs, 3)
    for run in runs:
        study, number = run.data.tags["study"], int(run.data.tags["trial"])
        trial = trials[study][number]
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent[study].info.run_id
        assert run.data.tags["sweep"] == "smoke" and run.data.tags["git_commit"]
        assert run.data.tags["config_key"] == trial.user_attrs["config_key"]
        assert run.data.params["policy"] == trial.params["policy"]
        assert run.data.params["quant_down"] == trial.params["quant_down"]
        assert run.data.metrics["final/test_acc"] == trial.values[0]
        assert run.data.metrics["final/comm_bytes"] == trial.values[1]
        assert len(client.get_metric_history(run.info.run_id, "test/acc")) == 2  # one per epoch
    baselines = [r for r in runs if r.data.tags["trial"] == "0"]
    assert baselines[0].data.tags["config_key"] != baselines[1].data.tags["config_key"]  # clients differ
    assert "cell" in out.stdout and "smoke/smallcnn-c1     3       0" in out.stdout

    again = run_cli(["sweep", "--spec", "smoke"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "done: 0 trial(s) run" in again.stdout
    assert {s: len(t) for s, t in studies(f"sqlite:///{tmp_path / 'optuna.db'}").items()} == {s: 3 for s in SMOKE_STUDIES}
    assert len(child_runs(client, "smoke")) == 6


def write_spec(tmp_path, old, new):
    """The smoke spec with one line changed, as the file spec.toml (so the sweep is named `spec`)."""
    text = specs.resolve("smoke").read_text()
    assert old in text
    path = tmp_path / "spec.toml"
    path.write_text(text.replace(old, new))
    return str(path)


def test_diverging_trials_are_failed_in_optuna_and_mlflow_and_the_sweep_goes_on(tmp_path):
    path = write_spec(tmp_path, "warmup_epochs = 0\n", "warmup_epochs = 0\nlr = 1e12\n")
    out = run_cli(["sweep", "--spec", path], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("FAILED: train/loss is") == 6
    trials = studies(f"sqlite:///{tmp_path / 'optuna.db'}")
    for study in ("spec/smallcnn-c1", "spec/smallcnn-c2"):
        assert [t.state for t in trials[study]] == [TrialState.FAIL] * 3
        assert all(t.user_attrs["failure"].startswith("diverged: train/loss is") for t in trials[study])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = child_runs(client, "spec")
    assert_each_finished_trial_has_one_run(trials, runs, 3)
    assert {r.info.status for r in runs} == {"FAILED"}
    assert all(r.data.tags["failure_reason"].startswith("train/loss is") for r in runs)
    again = run_cli(["sweep", "--spec", path], tmp_path)
    assert again.returncode == 0 and "done: 0 trial(s) run" in again.stdout


def wait_for_running_trial(storage, study, number, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=study, storage=storage).trials
        except Exception:  # the study or its tables do not exist yet
            trials = []
        if any(t.number == number and t.state == TrialState.RUNNING for t in trials):
            return
        time.sleep(0.2)
    raise AssertionError(f"trial {number} of {study} never ran")


@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)])
def test_a_killed_or_interrupted_sweep_is_finished_by_a_rerun_with_no_trial_lost_or_repeated(tmp_path, sig, code):
    """The worker is stopped in the middle of the baseline; the rerun retries it (same params), then completes."""
    # One cell of two trials, long enough to stop the first one midway.
    path = write_spec(tmp_path, "epochs = 2\nbatch_size", "epochs = 5\nbatch_size")
    text = (tmp_path / "spec.toml").read_text().replace("clients = [1, 2]", "clients = [1]")
    (tmp_path / "spec.toml").write_text(text.replace("trials = 3", "trials = 2\nsave_model = true"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {"PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench", "sweep", "--spec", path, "--heartbeat", "1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_running_trial(storage, "spec/smallcnn-c1", 0)
        time.sleep(1.5)  # into its first epochs
        proc.send_signal(sig)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code
    stopped = optuna.load_study(study_name="spec/smallcnn-c1", storage=storage).trials[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (stopped_run,) = child_runs(client, "spec")
    if sig == signal.SIGINT:  # stopped cleanly: failed, and its params queued again
        assert stopped.state == TrialState.FAIL and stopped_run.info.status == "KILLED"
    else:  # died: still RUNNING until its heartbeat is missed
        assert stopped.state == TrialState.RUNNING and stopped_run.info.status == "RUNNING"

    time.sleep(3.5)  # three missed heartbeats
    out = run_cli(["sweep", "--spec", path, "--heartbeat", "1"], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = studies(storage)
    first = trials["spec/smallcnn-c1"]
    assert first[0].state == TrialState.FAIL
    (retry,) = [t for t in first if t.system_attrs.get("retry_history") == [0]]
    assert retry.state == TrialState.COMPLETE and retry.params == first[0].params  # the baseline, again
    assert [t.state for t in first] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    runs = child_runs(client, "spec")
    assert_each_finished_trial_has_one_run(trials, runs, 2)
    for run in runs:  # save_model: the weights, for the privacy attack
        assert {a.path for a in client.list_artifacts(run.info.run_id, "weights")} == {"weights/client.pt",
                                                                                      "weights/server.pt"}
    gone = client.get_run(stopped_run.info.run_id)
    assert gone.info.lifecycle_stage == "deleted" and gone.data.tags["superseded_by"] == str(retry.number)


@pytest.mark.parametrize("args, env, message", [
    (["--spec", "quik"], {}, "spec: unknown name 'quik'; did you mean 'quick'?"),
    (["--spec", "smoke", "--workers", "0"], {}, "workers: must be >= 1, got 0"),
    (["--spec", "smoke", "--storage", "postgresql://nobody@127.0.0.1:9/none"], {}, "storage: cannot open postgresql://nobody@127.0.0.1:9/none"),
    (["--spec", "smoke"], {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, "MLFLOW_TRACKING_URI: tracking server http://127.0.0.1:9 is unreachable"),
    (["--spec", "smoke"], {"OPTUNA_STORAGE": "postgresql://u:secret@127.0.0.1:9/x"}, "storage: cannot open postgresql://u:***@127.0.0.1:9/x"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, env, message):
    out = run_cli(["sweep", *args], tmp_path, env=env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "secret" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_bad_spec_file_is_rejected_before_anything_is_written(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "s.toml").write_text(specs.resolve("smoke").read_text().replace('["smallcnn"]', '["vgg12"]'))
    out = run_cli(["sweep", "--spec", str(bad / "s.toml")], tmp_path)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: sweep.cells.models: unknown name 'vgg12'; did you mean 'vgg13' or 'vgg11'?")
    assert [p.name for p in tmp_path.iterdir()] == ["bad"]
