"""Settings in flight: real sweep worker processes proposed a setting another worker is training.

Each sweep has one cell of 3 trials of 2 seeds (1 epoch each) on a space of 1 or 3 settings, run by 2 or 4 worker
processes that start together, so that they propose what another is training. Whatever the timing,
no setting may be trained twice (counted from the seed runs in MLflow, one per seed and training),
and every trial must end finished, as a duplicate of a finished trial, or failed with a reason.
"""

from collections import Counter

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from bench import names
from bench import spec as specs
from tests.conftest import run_cli

SPACES = {1: 'quant_up = ["fp32"]', 3: 'quant_up = ["fp32", "fp16", "bf16"]'}


def in_flight_spec(tmp_path, settings: int) -> str:
    text = specs.resolve("smoke").read_text()
    for old, new in (("clients = [1, 2]", "clients = [1]"), ("epochs = 2", "epochs = 1"), ('policies = ["always", "periodic", "loss_threshold"]',
                     'policies = ["always"]'), ('quant_up = ["fp32", "fp16", "fp8_e4m3"]', SPACES[settings]),
                     ('quant_down = ["fp32", "fp16", "fp8_e5m2"]', 'quant_down = ["fp32"]')):
        assert old in text
        text = text.replace(old, new)
    text = text[:text.index("[sweep.search.ranges.periodic]")]
    path = tmp_path / "flight.toml"
    path.write_text(text)
    assert specs.load(str(path)).size() == settings
    return str(path)


@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("settings", [1, 3])
def test_no_setting_is_trained_twice_and_every_trial_ends_with_a_reason(tmp_path, workers, settings):
    """Catches: a worker training a setting another worker is training (not seen as taken)."""
    out = run_cli(["sweep", "--spec", in_flight_spec(tmp_path, settings), "--workers", str(workers)], tmp_path)
    assert out.returncode == 0, out.stderr
    trials = optuna.load_study(study_name="flight/smallcnn-c1", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    shown = "\n".join(f"trial {t.number}: {t.state.name} {t.user_attrs}" for t in trials)
    trained = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs["duplicate_of"] is None]
    keys = [t.user_attrs["config_key"] for t in trained]
    assert len(set(keys)) == len(keys) == settings, shown  # each setting finished by one trial
    by_key = {t.user_attrs["config_key"]: t.number for t in trained}
    for t in trials:
        if t.state == TrialState.COMPLETE and t.user_attrs["duplicate_of"] is not None:
            assert t.user_attrs["duplicate_of"] == by_key[t.user_attrs["config_key"]], shown
        elif t.state == TrialState.FAIL:
            assert t.user_attrs["duplicate_of"] is None and t.user_attrs["failure"].startswith("in flight: "), shown
        else:
            assert t in trained, shown
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    seed_runs = client.search_runs([client.get_experiment_by_name("flight").experiment_id],
                                   names.role_is(names.SEED_ROLE))
    assert Counter(r.data.tags["config_key"] for r in seed_runs) == {k: 2 for k in keys}, shown
