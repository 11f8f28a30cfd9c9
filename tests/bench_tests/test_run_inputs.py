"""What a run records about its data and its machine: MLflow data set inputs (the UI's Dataset
column) with a digest of the exact images, and MLflow's system metrics, switchable off."""

import json

from mlflow.tracking import MlflowClient

from bench import data, names
from bench.config import RunConfig
from tests.conftest import SMALL, cli


def runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("runs").experiment_id], order_by=["start_time"])


def inputs(run) -> dict[str, tuple]:
    """data set name -> (digest, source type, input tags, profile)"""
    return {i.dataset.name: (i.dataset.digest, i.dataset.source_type, {t.key: t.value for t in i.tags},
                             json.loads(i.dataset.profile)) for i in run.inputs.dataset_inputs}


def test_runs_log_their_data_sets_with_a_digest_of_the_exact_images(tmp_path):
    """Catches: a digest of the data set's name or source rather than its images (the third run's
    subset differs), one that depends on the setting (the first two share their images), a
    missing context or partition."""
    for extra in (["--policy", "always"], ["--policy", "periodic", "--clients", "2", "--partition", "dirichlet",
                                           "--partition-alpha", "0.5"], ["--train-subset", "200"]):
        out = cli(["run", *SMALL, *extra, "--no-system-metrics"], tmp_path)
        assert out.returncode == 0, out.stderr
    _, (first, second, third) = runs(tmp_path)
    ds = RunConfig(dataset="synthetic", train_subset=300, test_subset=100).load_data()
    train, test = inputs(first)["synthetic-train"], inputs(first)["synthetic-test"]
    assert train[0] == data.digest(ds.train_x, ds.train_y) and test[0] == data.digest(ds.test_x, ds.test_y)
    assert train[1] == "code"  # generated, not read from a file
    assert train[2] == {"mlflow.data.context": "training", "partition": "iid"}
    assert test[2] == {"mlflow.data.context": "test"}
    assert (train[3]["samples"], train[3]["subset"], train[3]["image_shape"], train[3]["clients"]) == (300, 300, [3, 32, 32], 1)
    assert (test[3]["samples"], test[3]["subset"]) == (100, 100)
    shared = inputs(second)["synthetic-train"]
    assert shared[0] == train[0]
    assert shared[2]["partition"] == "Dirichlet α=0.5" and sum(shared[3]["shard_sizes"]) == 300
    assert inputs(third)["synthetic-train"][0] != train[0]
    assert inputs(third)["synthetic-test"][0] == test[0]


def test_system_metrics_are_logged_unless_switched_off(tmp_path):
    assert cli(["run", *SMALL], tmp_path).returncode == 0
    assert cli(["run", *SMALL, "--no-system-metrics"], tmp_path).returncode == 0
    client, (on, off) = runs(tmp_path)
    sampled = {k for k in on.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= sampled
    assert 0 <= on.data.metrics["system/cpu_utilization_percentage"] <= 100
    assert len(client.get_metric_history(on.info.run_id, "system/cpu_utilization_percentage")) >= 1
    assert not any(k.startswith("system/") for k in off.data.metrics)


def test_every_seed_run_logs_its_own_data(tmp_path):
    assert cli(["run", *SMALL, "--seeds", "0,1", "--no-system-metrics"], tmp_path).returncode == 0
    _, all_runs = runs(tmp_path)
    setting = next(r for r in all_runs if names.ROLE not in r.data.tags)
    seeds = {r.data.tags["seed"]: r for r in all_runs if r.data.tags.get(names.ROLE) == "seed"}
    digests = {k: inputs(r)["synthetic-train"][0] for k, r in seeds.items()}
    assert digests["0"] != digests["1"]  # each seed draws its own subset
    assert inputs(setting)["synthetic-train"][0] == digests["0"]  # the setting's params are its first seed's
