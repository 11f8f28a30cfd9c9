"""`python -m bench sweep` end to end on local SQLite stores: trials, runs, resume, failures, kills."""

import json
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from bench import names, record, tuning
from bench import spec as specs
from tests.conftest import ROOT, cli, run_cli

SMOKE_STUDIES = ["smoke/smallcnn-c1", "smoke/smallcnn-c2"]


def studies(storage):
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
            for s in optuna.get_all_study_summaries(storage)}


def child_runs(client, sweep, role="trial"):
    exp = client.get_experiment_by_name(sweep)
    return client.search_runs([exp.experiment_id], names.role_is(role))


def assert_each_finished_trial_has_one_run(trials_by_study, runs, n_trials):
    """The contract the reports rely on: one active child run per finished trial (duplicates
    included), none for others; `n_trials` finished trials per study besides the duplicates."""
    finished = {(study, t.number) for study, trials in trials_by_study.items() for t in trials
                if t.state == TrialState.COMPLETE or t.user_attrs.get("failure", "").startswith("diverged")
                or t.user_attrs.get("duplicate_of") is not None}
    originals = {(study, t.number) for study, trials in trials_by_study.items() for t in trials
                 if t.user_attrs.get("duplicate_of") is None}
    assert {study: sum(s == study for s, _ in finished & originals) for study in trials_by_study} == {
        study: n_trials for study in trials_by_study}
    tagged = [(r.data.tags["study"], int(r.data.tags["trial"])) for r in runs]
    assert sorted(tagged) == sorted(finished)  # each exactly once


def test_smoke_sweep_logs_every_trial_under_its_study_and_a_rerun_adds_nothing(tmp_path):
    out = run_cli(["sweep", "--spec", "smoke", "--workers", "1"], tmp_path)  # one worker: the proposals are reproducible
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
    parents = client.search_runs([exp.experiment_id], names.role_is(names.STUDY_ROLE))
    assert sorted(p.info.run_name for p in parents) == SMOKE_STUDIES
    assert {p.info.status for p in parents} == {"FINISHED"}
    parent = {p.data.tags["study"]: p for p in parents}
    assert parent["smoke/smallcnn-c2"].data.params["clients"] == "2"
    assert parent["smoke/smallcnn-c2"].data.params["dataset"] == "synthetic"
    runs = child_runs(client, "smoke")
    seed_runs = child_runs(client, "smoke", "seed")
    assert len(seed_runs) == 2 * len(runs)
    assert_each_finished_trial_has_one_run(trials, runs, 3)
    for run in runs:
        study, number = run.data.tags["study"], int(run.data.tags["trial"])
        trial = trials[study][number]
        assert run.info.status == "FINISHED"
        assert run.data.tags[names.PARENT] == parent[study].info.run_id
        assert run.data.tags["sweep"] == "smoke" and run.data.tags["git_commit"]
        assert run.data.tags["config_key"] == trial.user_attrs["config_key"]
        assert run.data.params["policy"] == trial.params["policy"]
        assert run.data.params["quant_down"] == trial.params["quant_down"]
        assert run.data.metrics[names.FINAL_TEST_ACC] == trial.values[0]
        assert run.data.metrics[names.FINAL_COMM_BYTES] == trial.values[1]
        assert run.data.params["seeds"] == "0,1"
        assert len(client.get_metric_history(run.info.run_id, names.TEST_ACC)) == 2  # one per epoch, the mean
        # one nested run per seed; the trial's objectives are their means
        seeds = {r.data.tags["seed"]: r for r in seed_runs if r.data.tags[names.PARENT] == run.info.run_id}
        assert sorted(seeds) == ["0", "1"]
        assert all(r.data.tags["trial"] == str(number) and r.info.status == "FINISHED" for r in seeds.values())
        accs = [seeds[s].data.metrics[names.FINAL_TEST_ACC] for s in ("0", "1")]
        assert trial.values[0] == pytest.approx(sum(accs) / 2)
        assert run.data.metrics[names.std(names.FINAL_TEST_ACC)] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
        assert len(client.get_metric_history(seeds["1"].info.run_id, "mode")) == 2
    baselines = [r for r in runs if r.data.tags["trial"] == "0"]
    assert baselines[0].data.tags["config_key"] != baselines[1].data.tags["config_key"]  # clients differ
    assert "cell" in out.stdout and "smoke/smallcnn-c1     3       0" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == f"runs: http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"

    again = run_cli(["sweep", "--spec", "smoke", "--workers", "1"], tmp_path)
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


def test_a_cell_of_diverged_trials_is_done():
    """Catches: diverged trials not counted as done, which makes a sweep of them never end."""
    spec = specs.load("smoke")
    study = optuna.create_study(directions=list(tuning.DIRECTIONS))
    for k in range(spec.trials):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.FAIL, user_attrs={"config_key": f"k{k}", "duplicate_of": None,
                                               "failure": f"{tuning.DIVERGED}: train/loss is nan"}))
    assert tuning.next_step(study, spec) is tuning.Next.DONE, "diverged trials are not counted as done"


def limit_training(monkeypatch, per_study: int) -> None:
    """Fail the test at once, saying why, when a study trains more than `per_study` settings."""
    trained = {}

    def train_setting(cfg, seeds, dest, **kwargs):
        study = dest.tags["study"]
        trained[study] = trained.get(study, 0) + 1
        assert trained[study] <= per_study, (
            f"{study} trains a setting {trained[study]} times over its {per_study} trials: a sweep that does not "
            "count its finished trials (diverged ones, say) as done never ends")
        return real(cfg, seeds, dest, **kwargs)

    real = record.train_setting
    monkeypatch.setattr(record, "train_setting", train_setting)


def test_diverging_trials_are_failed_in_optuna_and_mlflow_and_the_sweep_goes_on(tmp_path, monkeypatch):
    path = write_spec(tmp_path, "warmup_epochs = 0\n", "warmup_epochs = 0\nlr = 1e12\n")
    # In process, so that a sweep that would never end stops at its fourth training, not at pytest's timeout.
    limit_training(monkeypatch, 3)
    out = cli(["sweep", "--spec", path, "--workers", "1"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("FAILED: train/loss is") == 6
    trials = studies(f"sqlite:///{tmp_path / 'optuna.db'}")
    for study in ("spec/smallcnn-c1", "spec/smallcnn-c2"):
        originals = [t for t in trials[study] if t.user_attrs["duplicate_of"] is None]
        assert [t.state for t in originals] == [TrialState.FAIL] * 3
        assert all(t.user_attrs["failure"].startswith("diverged: train/loss is") for t in originals)
        # a proposal that repeats a diverged setting fails at once, as a duplicate (it does not count)
        assert all(t.state == TrialState.FAIL and t.user_attrs["failure"].startswith("duplicate of trial ")
                   for t in trials[study] if t not in originals)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = child_runs(client, "spec")
    assert_each_finished_trial_has_one_run(trials, runs, 3)
    assert {r.info.status for r in runs} == {"FAILED"}
    assert all(r.data.tags["failure_reason"].startswith("train/loss is") for r in runs)
    again = run_cli(["sweep", "--spec", path, "--workers", "1"], tmp_path)
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


def wait_for_seed(tracking_uri, sweep, seed, timeout=240, status="FINISHED"):
    """The run id of the first seed run tagged `seed` in `status` (by default: that finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = MlflowClient(tracking_uri)
            done = [r for r in child_runs(client, sweep, "seed")
                    if r.data.tags["seed"] == str(seed) and r.info.status == status]
        except Exception:  # the experiment or the tables do not exist yet
            done = []
        if done:
            return done[0].info.run_id
        time.sleep(0.2)
    raise AssertionError(f"seed {seed} never reached {status}")


@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)])
def test_a_killed_or_interrupted_sweep_is_finished_by_a_rerun_with_no_trial_or_seed_lost_or_repeated(
        tmp_path, sig, code):
    """The worker is stopped in the baseline's second seed; the rerun retries the baseline (same
    params), adopts its finished first seed instead of training it again, then completes."""
    # One cell of two trials, long enough to stop the second seed of the first one midway.
    path = write_spec(tmp_path, "epochs = 2\nbatch_size", "epochs = 5\nbatch_size")
    text = (tmp_path / "spec.toml").read_text().replace("clients = [1, 2]", "clients = [1]")
    (tmp_path / "spec.toml").write_text(text.replace("trials = 3", "trials = 2\nsave_model = true"))
    storage, tracking_uri = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench", "sweep", "--spec", path, "--heartbeat", "1", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_running_trial(storage, "spec/smallcnn-c1", 0)
        first_seed = wait_for_seed(tracking_uri, "spec", 0)
        # Stopped as soon as the second seed is seen training (a fixed sleep let a fast machine finish it first).
        wait_for_seed(tracking_uri, "spec", 1, status="RUNNING")
        proc.send_signal(sig)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code
    stopped = optuna.load_study(study_name="spec/smallcnn-c1", storage=storage).trials[0]
    client = MlflowClient(tracking_uri)
    (stopped_run,) = child_runs(client, "spec")
    (stopped_seed,) = [r for r in child_runs(client, "spec", "seed") if r.data.tags["seed"] == "1"]
    if sig == signal.SIGINT:  # stopped cleanly: failed, and its params queued again
        assert stopped.state == TrialState.FAIL and stopped_run.info.status == "KILLED"
        assert stopped_seed.info.status == "KILLED"
    else:  # died: still RUNNING until its heartbeat is missed
        assert stopped.state == TrialState.RUNNING and stopped_run.info.status == "RUNNING"

    time.sleep(3.5)  # three missed heartbeats
    out = run_cli(["sweep", "--spec", path, "--heartbeat", "1", "--workers", "1"], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = studies(storage)
    first = trials["spec/smallcnn-c1"]
    assert first[0].state == TrialState.FAIL
    (retry,) = [t for t in first if t.system_attrs.get("retry_history") == [0]]
    assert retry.state == TrialState.COMPLETE and retry.params == first[0].params  # the baseline, again
    assert [t.state for t in first] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    runs = child_runs(client, "spec")
    assert_each_finished_trial_has_one_run(trials, runs, 2)
    seed_runs = child_runs(client, "spec", "seed")
    assert len(seed_runs) == 4 and {r.info.status for r in seed_runs} == {"FINISHED"}
    for run in runs + seed_runs:  # save_model: the weights, for the privacy attack
        paths = {a.path for a in client.list_artifacts(run.info.run_id, "weights")}
        assert paths == (set() if run in runs else {"weights/client.pt", "weights/server.pt"})
    # the finished seed was adopted by the retry, not trained again
    (retry_run,) = [r for r in runs if r.data.tags["trial"] == str(retry.number)]
    adopted = client.get_run(first_seed)
    assert adopted.info.lifecycle_stage == "active" and adopted.data.tags["trial"] == str(retry.number)
    assert adopted.data.tags[names.PARENT] == retry_run.info.run_id
    assert len(client.get_metric_history(first_seed, names.TEST_ACC)) == 5  # logged once, not twice
    mean = sum(r.data.metrics[names.FINAL_TEST_ACC] for r in seed_runs
               if r.data.tags[names.PARENT] == retry_run.info.run_id) / 2
    assert retry.values[0] == pytest.approx(mean)
    for gone_id in (stopped_run.info.run_id, stopped_seed.info.run_id):
        gone = client.get_run(gone_id)
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


@pytest.mark.parametrize("old, new, message", [
    ('["smallcnn"]', '["vgg12"]', "error: sweep.cells.models: unknown name 'vgg12'; did you mean 'vgg13' or 'vgg11'?"),
    # a check that needs the data set: its classes hold 200 training images each
    ("clients = [1, 2]", "clients = [1, 300]", "error: clients: must be between 1 and 200 for this data set, got 300"),
])
def test_a_bad_spec_file_is_rejected_before_anything_is_written(tmp_path, old, new, message):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "s.toml").write_text(specs.resolve("smoke").read_text().replace(old, new))
    out = run_cli(["sweep", "--spec", str(bad / "s.toml")], tmp_path)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(message)
    assert [p.name for p in tmp_path.iterdir()] == ["bad"]


def test_explicit_settings_run_first_a_known_setting_is_not_trained_again_and_a_used_up_space_ends_the_cell(tmp_path):
    """Space: always x {fp32, fp16, bf16} up x fp32 down (3 settings), 9 trials asked for."""
    text = specs.resolve("smoke").read_text().replace("clients = [1, 2]", "clients = [1]")
    text = text.replace("trials = 3", "trials = 9").replace("seeds = [0, 1]", "seeds = [0]")
    text = text.replace("epochs = 2", "epochs = 1")
    head, _, _ = text.partition("[sweep.search]")
    path = tmp_path / "spec.toml"
    path.write_text(head + '[sweep.search]\npolicies = ["always"]\nquant_up = ["fp32", "fp16", "bf16"]\n'
                    'quant_down = ["fp32"]\n\n[[sweep.settings]]\npolicy = "always"\nquant_up = "bf16"\n')
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = specs.load(str(path))
    assert spec.size() == 3
    from bench import record, tuning

    # A proposal the study has already run, queued after the baseline and the explicit setting.
    tuning.open_study(tuning.open_storage(storage, None), spec.cells[0], spec).enqueue_trial(specs.BASELINE)
    out = run_cli(["sweep", "--spec", str(path), "--workers", "1"], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = studies(storage)["spec/smallcnn-c1"]
    assert trials[0].params == specs.BASELINE
    assert trials[1].params == {"policy": "always", "quant_up": "bf16", "quant_down": "fp32"}  # the setting
    assert trials[2].params == specs.BASELINE and trials[2].user_attrs["duplicate_of"] == 0
    assert trials[2].values == trials[0].values
    originals = [t for t in trials if t.user_attrs["duplicate_of"] is None]
    # every setting ran once and the cell ended there, 6 trials short of `trials`
    assert sorted(t.params["quant_up"] for t in originals) == ["bf16", "fp16", "fp32"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert "trial 2 [always fp32/fp32]: duplicate of trial 0, not trained" in out.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = {int(r.data.tags["trial"]): r for r in child_runs(client, "spec")}
    assert sorted(runs) == [t.number for t in trials]
    dup, first = runs[2], runs[0]
    assert dup.data.tags["duplicate_of"] == "0" and "duplicate_of" not in first.data.tags
    finals = {k: v for k, v in first.data.metrics.items() if k.startswith("final/")}
    assert dup.data.metrics == finals and names.FINAL_COMM_BYTES in finals and dup.info.status == "FINISHED"
    assert client.get_metric_history(dup.info.run_id, names.TEST_ACC) == []  # nothing trained
    again = run_cli(["sweep", "--spec", str(path), "--workers", "1"], tmp_path)
    assert again.returncode == 0 and "done: 0 trial(s) run" in again.stdout, again.stderr



def test_settings_that_differ_in_an_engine_field_alone_are_two_trials_each_trained_with_its_own_field(tmp_path):
    text = specs.resolve("smoke").read_text().replace("clients = [1, 2]", "clients = [1]")
    text = text.replace("trials = 3\n", "").replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 2", "epochs = 1")
    head, _, _ = text.partition("[sweep.search]")
    gate = 'policy = "periodic"\nargs = { period = 2 }\nquant_up = "fp8_e4m3"\n'
    path = tmp_path / "spec.toml"
    path.write_text(head + f"[[sweep.settings]]\n{gate}\n[[sweep.settings]]\n{gate}cache_noise = 0.1\n")
    out = run_cli(["sweep", "--spec", str(path), "--workers", "1"], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = studies(f"sqlite:///{tmp_path / 'optuna.db'}")["spec/smallcnn-c1"]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3  # the baseline and both settings
    assert [t.user_attrs["duplicate_of"] for t in trials] == [None] * 3
    assert trials[1].params == trials[2].params  # what the sampler sees is the same
    assert trials[1].user_attrs["config_key"] != trials[2].user_attrs["config_key"]
    assert "periodic period=2 cache_noise=0.1 fp8_e4m3/fp32" in out.stdout
    runs = {int(r.data.tags["trial"]): r.data.params for r in child_runs(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), "spec")}
    assert [runs[n]["cache_noise"] for n in range(3)] == ["0.0", "0.0", "0.1"]


def test_cache_options_under_a_policy_that_never_leaves_full_are_one_setting_trained_once(tmp_path):
    """`always` never runs a FORWARD or CACHED epoch, so mixup, noise and refresh cannot act under it.
    A key that counted them would train the same network again for every combination (a frontier
    search once spent a third of its trials so)."""
    text = specs.resolve("smoke").read_text().replace("clients = [1, 2]", "clients = [1]")
    text = text.replace("trials = 3\n", "").replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 2", "epochs = 1")
    head, _, _ = text.partition("[sweep.search]")
    fp8 = 'policy = "always"\nquant_up = "fp8_e4m3"\n'
    path = tmp_path / "spec.toml"
    path.write_text(head + f"[[sweep.settings]]\n{fp8}\n[[sweep.settings]]\n{fp8}cache_mixup = 0.2\n"
                    'refresh_threshold = 0.05\n\n[[sweep.settings]]\npolicy = "always"\ncache_noise = 0.1\n')
    out = run_cli(["sweep", "--spec", str(path), "--workers", "1"], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = studies(f"sqlite:///{tmp_path / 'optuna.db'}")["spec/smallcnn-c1"]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4  # the baseline and three settings
    assert [t.user_attrs["duplicate_of"] for t in trials] == [None, None, 1, 0]
    runs = {int(r.data.tags["trial"]): r.data.params for r in child_runs(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), "spec")}
    assert [runs[n]["cache_mixup"] for n in range(4)] == ["0.0"] * 4  # what trained, not what was asked
    assert [runs[n]["refresh_threshold"] for n in range(4)] == ["None"] * 4
    assert json.loads(trials[2].user_attrs["choice"]) == json.loads(trials[1].user_attrs["choice"])  # the ablation's source


def test_a_setting_added_to_the_spec_joins_the_existing_study_once(tmp_path):
    from bench import record, tuning

    head = specs.resolve("smoke").read_text().replace("clients = [1, 2]", "clients = [1]").replace("trials = 3\n", "")
    head, _, _ = head.partition("[sweep.search]")
    gate = '[[sweep.settings]]\npolicy = "loss_threshold"\nargs = { threshold = 0.1 }\nquant_up = "fp8_e4m3"\n'
    capped = gate.replace("threshold = 0.1 }", "threshold = 0.1, max_cached = 2 }")
    storage = tuning.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}", None)
    for text in (head + gate, head + gate + capped, head + gate + capped):
        path = tmp_path / "spec.toml"
        path.write_text(text)
        spec = specs.load(str(path))
        study = tuning.open_study(storage, spec.cells[0], spec)
    queued = [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)]
    assert queued == [specs.BASELINE] + [spec.fixed_params(s) for s in spec.settings]
    assert queued[2]["loss_threshold.max_cached"] == 2 and "loss_threshold.max_cached" not in queued[1]
    assert study.metric_names == [names.FINAL_TEST_ACC, names.FINAL_COMM_BYTES]  # named for optuna-dashboard
