"""The distributed set-up for real: two worker processes, Optuna in PostgreSQL, an mlflow server on it."""

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from bench import names, tuning
from tests.bench_tests.test_sweep import SMOKE_STUDIES, assert_each_finished_trial_has_one_run, child_runs, studies
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_two_workers_against_postgresql_and_an_mlflow_server_log_every_trial_exactly_once(
        tmp_path, postgres, mlflow_server):
    storage = postgres + "optuna"
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "OPTUNA_STORAGE": storage}
    out = run_cli(["sweep", "--spec", "smoke", "--workers", "2"], tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing local: both stores are servers
    trials = studies(storage)
    assert sorted(trials) == SMOKE_STUDIES
    for study in SMOKE_STUDIES:
        # Two workers draw different proposals: one may repeat a finished setting, which takes its
        # result. Two asking at once may open one trial too many: it fails as surplus, untrained.
        surplus = [t for t in trials[study] if t.user_attrs.get("failure", "").startswith(tuning.SURPLUS)]
        assert all(t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs for t in surplus)
        kept = [t for t in trials[study] if t not in surplus]
        seen = [(t.number, t.state.name, t.user_attrs) for t in trials[study]]
        assert all("duplicate_of" in t.user_attrs for t in kept), seen
        originals = [t for t in kept if t.user_attrs["duplicate_of"] is None]
        assert [t.state for t in originals] == [TrialState.COMPLETE] * 3, seen
        assert all(t.state == TrialState.COMPLETE for t in kept), seen
        assert trials[study][0].params == {"policy": "always", "quant_up": "fp32", "quant_down": "fp32"}
    workers = {line.split()[0] for line in out.stdout.splitlines() if " trial " in line and line.startswith("w")}
    assert workers == {"w0", "w1"}  # both took part
    client = MlflowClient(mlflow_server)
    runs = child_runs(client, "smoke")
    assert_each_finished_trial_has_one_run(trials, runs, 3)
    assert {r.info.status for r in runs} == {"FINISHED"}
    exp = client.get_experiment_by_name("smoke")
    parents = client.search_runs([exp.experiment_id], names.role_is(names.STUDY_ROLE))
    assert sorted((p.info.run_name, p.info.status) for p in parents) == [(s, "FINISHED") for s in SMOKE_STUDIES]
    by_study = {p.data.tags["study"]: p.info.run_id for p in parents}
    assert all(r.data.tags[names.PARENT] == by_study[r.data.tags["study"]] for r in runs)

    again = run_cli(["sweep", "--spec", "smoke", "--workers", "2"], tmp_path, env=env)
    assert again.returncode == 0 and "done: 0 trial(s) run" in again.stdout, again.stderr
    assert studies(storage).keys() == trials.keys()
    assert sum(len(t) for t in studies(storage).values()) == sum(len(t) for t in trials.values())
    assert sum(len(t) for t in trials.values()) == len(runs) + sum(
        t.user_attrs.get("failure", "").startswith(tuning.SURPLUS) for ts in trials.values() for t in ts)
    assert len(child_runs(client, "smoke")) == len(runs)
    trained = [r for r in runs if "duplicate_of" not in r.data.tags]
    assert len(child_runs(client, "smoke", "seed")) == 2 * len(trained)
