"""bench.record: a setting over its seeds, as MLflow runs (`bench run --seeds`; sweeps use the same path)."""

import math

import pytest
from mlflow.tracking import MlflowClient

from bench import names, record
from bench.errors import UsageError
from tests.conftest import SMALL, run_cli


def test_means_and_sample_deviations_over_seeds():
    finals = [{names.FINAL_TEST_ACC: 0.5, names.FINAL_COMM_BYTES: 100.0}, {names.FINAL_TEST_ACC: 0.7, names.FINAL_COMM_BYTES: 100.0}]
    out = record.summarize(finals)
    assert out[names.FINAL_TEST_ACC] == pytest.approx(0.6)
    assert out[names.std(names.FINAL_TEST_ACC)] == pytest.approx(math.sqrt(0.02))  # ((0.1^2 + 0.1^2) / (2 - 1)) ** 0.5
    assert out[names.FINAL_COMM_BYTES] == 100.0 and out[names.std(names.FINAL_COMM_BYTES)] == 0.0
    epochs = record.mean_epochs([[{names.TEST_ACC: 0.2, "mode": 0.0, "mode/client_1": 2.0}],
                                 [{names.TEST_ACC: 0.4, "mode": 1.0, "mode/client_1": 0.0}]])
    assert epochs == [{names.TEST_ACC: pytest.approx(0.3)}]  # modes are not averaged


@pytest.mark.parametrize("seeds, message", [
    ([], "seeds: expected a non-empty list of seeds"),
    ([0, -1], "seeds: every seed must be an integer >= 0, got -1"),
    ([1, 2, 1], "seeds: lists a seed twice, got [1, 2, 1]"),
    ([0, True], "seeds: every seed must be an integer >= 0, got True"),
])
def test_bad_seeds_name_the_field(seeds, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        record.check_seeds("seeds", seeds)


def test_run_with_seeds_is_one_run_of_means_with_a_nested_run_per_seed(tmp_path):
    out = run_cli(["run", *SMALL, "--seeds", "3,1", "--policy", "periodic", "--policy-arg", "period=2"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "seed 3" in out.stdout and "seed 1" in out.stdout and "mean over 2 seeds: test acc" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "runs: http://127.0.0.1:5000/#/experiments/1/runs"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("runs")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    (setting,) = [r for r in runs if names.PARENT not in r.data.tags]
    seeds = {r.data.tags["seed"]: r for r in runs if r.data.tags.get(names.PARENT) == setting.info.run_id}
    assert sorted(seeds) == ["1", "3"] and len(runs) == 3
    assert {r.data.tags[names.ROLE] for r in seeds.values()} == {"seed"}
    assert setting.data.params["seeds"] == "3,1" and setting.data.params["seed"] == "3"
    assert seeds["1"].data.params["seed"] == "1" and seeds["1"].data.params["seeds"] == "1"
    assert {r.info.status for r in runs} == {"FINISHED"}
    for name in (names.FINAL_TEST_ACC, names.FINAL_COMM_BYTES, names.FINAL_CLIENT_FLOPS):
        values = [seeds[s].data.metrics[name] for s in ("3", "1")]
        assert setting.data.metrics[name] == pytest.approx(sum(values) / 2)
        assert setting.data.metrics[names.std(name)] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    # periodic, period 2: FULL, FORWARD, FULL whatever the seed, so bytes agree exactly
    assert setting.data.metrics[names.std(names.FINAL_COMM_BYTES)] == 0.0
    accs = [[m.value for m in client.get_metric_history(seeds[s].info.run_id, names.TEST_ACC)] for s in ("3", "1")]
    mean = [m.value for m in client.get_metric_history(setting.info.run_id, names.TEST_ACC)]
    assert mean == pytest.approx([(a + b) / 2 for a, b in zip(*accs)]) and len(mean) == 3
    assert [m.value for m in client.get_metric_history(seeds["1"].info.run_id, "mode")] == [0, 1, 0]
    assert client.get_metric_history(setting.info.run_id, "mode") == []


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0,0"], "seeds: lists a seed twice, got [0, 0]"),
    (["--seeds", "0,-2"], "seeds: every seed must be an integer >= 0, got -2"),
    (["--seeds", ""], "seeds: expected comma-separated integers, got ''"),
    (["--seeds", "0,1", "--seed", "2"], "seeds: give --seed or --seeds, not both"),
    (["--clients", "20", "--train-subset", "100"], "clients: must be between 1 and 10 for this data set, got 20"),
])
def test_bad_seeds_or_a_data_set_too_small_is_exit_2_and_writes_nothing(tmp_path, args, message):
    out = run_cli(["run", *SMALL, *args], tmp_path)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert message in line
    assert list(tmp_path.iterdir()) == []
