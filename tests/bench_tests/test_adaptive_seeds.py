"""Adaptive seeds in a real sweep: the baseline trains every seed, a setting stops once decided."""

import optuna
from mlflow.tracking import MlflowClient

from bench import names
from reports import noise

from tests.conftest import run_cli

SPEC = """
[sweep]
trials = 3
seeds = { min = 2, max = 4 }
# The margin is wide; the first setting differs from the baseline only in when it tests (a test
# pass changes no training state), so its paired differences are exactly 0 on any CPU and it is
# decided "non-inferior" at the first look. Whether periodic(2) is decided depends on the kernels'
# floats: only the rule is checked for it.
margin_pp = 50

[sweep.cells]
models = ["smallcnn"]
clients = [1]

[sweep.fixed]
dataset = "synthetic"
width = 0.25
cut = 2
epochs = 2
batch_size = 32
warmup_epochs = 0

[[sweep.settings]]
policy = "always"
eval_every = 2

[[sweep.settings]]
policy = "periodic"
args = { period = 2 }
quant_up = "fp32"
quant_down = "fp32"
"""


def test_a_setting_stops_at_its_first_decided_look_and_the_baseline_trains_every_seed(tmp_path):
    (tmp_path / "adaptive.toml").write_text(SPEC)
    out = run_cli(["sweep", "--spec", str(tmp_path / "adaptive.toml"), "--workers", "2"], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = optuna.load_study(study_name="adaptive/smallcnn-c1", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("adaptive")
    runs = {int(r.data.tags["trial"]): r for r in
            client.search_runs([exp.experiment_id], names.role_is(names.TRIAL_ROLE))}
    seed_runs = client.search_runs([exp.experiment_id], names.role_is(names.SEED_ROLE))
    trained = {n: sorted(int(s.data.tags["seed"]) for s in seed_runs
                         if s.data.tags[names.PARENT] == run.info.run_id) for n, run in runs.items()}
    seen = [(t.number, t.state, t.user_attrs) for t in trials]
    assert trained[0] == [0, 1, 2, 3], seen  # the baseline: every seed
    assert trained[1] == [0, 1], seen  # the baseline tested once: decided at the first look
    # The console counts the seeds a setting trained, not the seeds it might have.
    assert "(std over 4 seeds)" in out.stdout + out.stderr and "(std over 2 seeds)" in out.stdout + out.stderr
    for n in (0, 1, 2):
        assert runs[n].data.params["seeds"] == ",".join(map(str, trained[n]))
    assert {(r.data.params["seeds_min"], r.data.params["seeds_max"]) for r in runs.values()} == {("2", "4")}
    # Each seed's accuracy is noted on its trial, where the paired trials read it; a setting stops
    # at the first look (from the 2nd seed on) whose verdict is decided, else at the 4th seed.
    accs = {t.number: {int(k.removeprefix("seed_acc/")): v for k, v in t.user_attrs.items()
                       if k.startswith("seed_acc/")} for t in trials}
    for t in trials:
        assert sorted(accs[t.number]) == trained[t.number], seen
    assert accs[1] == {s: accs[0][s] for s in (0, 1)}  # testing less often trains the same networks
    looks = noise.looks(2, 4)
    for n in (1, 2):
        decided = [noise.decided({s: accs[n][s] for s in trained[n][:k]}, accs[0], 50, looks) for k in (2, 3, 4)]
        stop = len(trained[n])
        assert not any(decided[:stop - 2]) and (decided[stop - 2] or stop == 4), (n, decided, seen)
    study_run = client.search_runs([exp.experiment_id], names.role_is(names.STUDY_ROLE))[0]
    assert study_run.data.tags["margin_pp"] == "50.0"
