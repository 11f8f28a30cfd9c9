"""bench.partition: exact class counts of each partition for a fixed seed, the checks of its fields,
and FedAvg weighting each client by the shard the partition gave it."""

import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from bench import data, engine, subsets
from bench.config import RunConfig
from bench.errors import UsageError
from bench.partition import Partition, class_counts
from bench.wire import ClientEnd
from tests.conftest import SMALL, cli


@pytest.fixture(scope="module")
def labels():
    return data.load("synthetic", seed=0).train_y  # 2000 samples, 200 per class


def counts(labels, partition, clients=5, seed=0):
    return class_counts(labels, partition.split(labels, clients, seed), 10)


# Per partition of the synthetic set (200 per class) among 5 clients with seed 0: each client's
# class counts, clients separated by "|". Classes with 3 each: 15 places for 10 classes, so five
# classes are held by two clients, who split them.
EXACT = {
    Partition("dirichlet", 0.1): "0 0 0 115 186 87 0 17 0 0 | 12 0 0 2 0 102 0 182 0 0 | 25 0 39 0 3 10 0 0 199 199 "
                                 "| 0 188 160 0 10 0 199 0 0 0 | 163 12 1 83 1 1 1 1 1 1",
    Partition("dirichlet", 0.5): "27 11 4 22 15 53 54 24 3 147 | 38 122 71 79 9 25 17 118 0 0 | 1 5 59 41 10 35 3 32 "
                                 "38 53 | 124 30 12 1 33 83 53 24 89 0 | 10 32 54 57 133 4 73 2 70 0",
    Partition("classes", classes_per_client=2): "0 0 0 0 0 0 200 0 0 200 | 200 0 0 0 200 0 0 0 0 0 | 0 0 200 200 0 0 "
                                                "0 0 0 0 | 0 200 0 0 0 200 0 0 0 0 | 0 0 0 0 0 0 0 200 200 0",
    Partition("classes", classes_per_client=3): "100 0 0 0 0 0 100 0 0 100 | 0 0 100 200 100 0 0 0 0 0 | 0 200 0 0 0 "
                                                "200 0 0 200 0 | 0 0 0 0 0 0 100 200 0 100 | 100 0 100 0 100 0 0 0 0 0",
}


@pytest.mark.parametrize("partition", EXACT, ids=lambda p: p.label())
def test_exact_class_counts_for_seed_0(labels, partition):
    """Catches: a draw that does not follow the seed, lost or repeated samples, a floor not enforced."""
    expected = [[int(n) for n in row.split()] for row in EXACT[partition].split("|")]
    assert counts(labels, partition) == expected


def test_another_seed_draws_other_shards(labels):
    assert counts(labels, Partition("dirichlet", 0.1), seed=1)[0] == [36, 1, 0, 0, 0, 0, 198, 0, 13, 0]


@pytest.mark.parametrize("partition", [Partition("dirichlet", 0.1), Partition("dirichlet", 100.0),
                                       Partition("classes", classes_per_client=1),
                                       Partition("classes", classes_per_client=4)])
def test_shards_are_disjoint_sorted_cover_and_repeat(labels, partition):
    shards = partition.split(labels, 5, seed=3)
    joined = torch.cat(shards)
    assert len(joined) == len(joined.unique())
    assert all(torch.equal(s, s.sort().values) and len(s) >= 10 for s in shards)
    if partition.kind == "dirichlet":
        assert len(joined) == len(labels)  # every sample is dealt
    assert all(torch.equal(a, b) for a, b in zip(shards, partition.split(labels, 5, seed=3)))


def test_iid_is_the_equal_stratified_split(labels):
    assert all(torch.equal(a, b) for a, b in zip(Partition().split(labels, 4, 0), subsets.iid_shards(labels, 4, 0)))
    assert counts(labels, Partition(), clients=4) == [[50] * 10] * 4


def test_large_alpha_is_close_to_iid(labels):
    sizes = [sum(c) for c in counts(labels, Partition("dirichlet", 1000.0))]
    assert max(sizes) - min(sizes) < 60


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"partition": "dirichlt"}, "partition: unknown name 'dirichlt'; did you mean 'dirichlet'?"),
        ({"partition": "dirichlet"}, "partition_alpha: partition = dirichlet needs a concentration"),
        ({"partition": "dirichlet", "partition_alpha": 0.0}, "partition_alpha: must be a number > 0, got 0.0"),
        ({"partition_alpha": 0.5}, "partition_alpha: applies to partition = dirichlet only (partition = iid)"),
        ({"partition": "classes"}, "classes_per_client: partition = classes needs K"),
        ({"partition": "classes", "classes_per_client": 0}, "classes_per_client: must be an integer >= 1, got 0"),
        ({"classes_per_client": 2}, "classes_per_client: applies to partition = classes only"),
        ({"partition_min_samples": 0}, "partition_min_samples: must be an integer >= 1, got 0"),
    ],
)
def test_bad_partition_fields(fields, message):
    with pytest.raises(UsageError) as caught:
        RunConfig(dataset="synthetic", clients=5, **fields)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"partition": "classes", "classes_per_client": 11}, "classes_per_client: must be at most the 10 classes"),
        ({"partition": "dirichlet", "partition_alpha": 0.5, "partition_min_samples": 500},
         "partition_min_samples: 5 clients of at least 500 samples need 2500, the data set has 2000"),
        ({"partition": "dirichlet", "partition_alpha": 0.05, "clients": 7, "partition_min_samples": 280},
         "partition_min_samples: no Dirichlet draw with alpha 0.05 gave each of 7 clients 280 samples in 1000 draws"),
        ({"partition": "classes", "classes_per_client": 1, "partition_min_samples": 300},
         "partition_min_samples: a client holds 200 samples, fewer than 300, in this 1 class each partition of 2000"),
    ],
)
def test_a_partition_the_data_cannot_give_is_refused(fields, message):
    cfg = RunConfig(**({"dataset": "synthetic", "clients": 5} | fields))
    with pytest.raises(UsageError) as caught:
        cfg.load_data()
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("args, message", [
    (["--partition", "dirichlet"], "partition_alpha: partition = dirichlet needs a concentration"),
    (["--partition", "dirichlet", "--partition-alpha", "-1"], "partition_alpha: must be a number > 0, got -1.0"),
    (["--partition", "classes", "--classes-per-client", "12"], "classes_per_client: must be at most the 10 classes"),
    (["--partition", "skewed"], "partition: unknown name 'skewed'"),
])
def test_bad_partition_flags_are_one_line_exit_2_and_write_nothing(tmp_path, args, message):
    out = cli(["run", *SMALL, "--clients", "3", *args], tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert list(tmp_path.iterdir()) == []


def test_partition_fields_are_params():
    params = RunConfig(dataset="synthetic", clients=5, partition="dirichlet", partition_alpha=0.1).to_params()
    assert (params["partition"], params["partition_alpha"], params["classes_per_client"]) == ("dirichlet", 0.1, None)
    assert params["partition_min_samples"] == 10


def test_fedavg_weights_each_client_by_its_real_shard(monkeypatch):
    """Catches: averaging weights taken from the IID shard size, or equal weights, on unequal shards."""
    cfg = RunConfig(model="smallcnn", width=0.25, dataset="synthetic", train_subset=600, test_subset=100, clients=3,
                    epochs=2, batch_size=64, partition="dirichlet", partition_alpha=0.3, val_fraction=0.1,
                    device="cpu")
    sent = []
    upload = ClientEnd.upload_weights

    def spy(self, state, weight):
        sent.append((self.client, weight))
        upload(self, state, weight)

    monkeypatch.setattr(ClientEnd, "upload_weights", spy)
    ds = cfg.load_data()
    shards = cfg.shards(ds.train_y)
    trained = [len(s) - round(0.1 * len(s)) for s in shards]  # the validation slice is held out
    assert len(set(trained)) == 3  # unequal, so a wrong weight cannot pass
    engine.train(cfg, dataset=ds, progress=False)
    assert sent == [(k, trained[k]) for k in range(3)] * 2


def test_a_run_records_its_partition_as_params_and_partition_json(tmp_path):
    out = cli(["run", *SMALL, "--clients", "3", "--partition", "classes", "--classes-per-client", "4",
               "--no-system-metrics"], tmp_path)
    assert out.returncode == 0, out.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("runs").experiment_id])
    assert (run.data.params["partition"], run.data.params["classes_per_client"]) == ("classes", "4")
    record = json.loads(open(client.download_artifacts(run.info.run_id, "partition.json", str(tmp_path))).read())
    cfg = RunConfig(dataset="synthetic", train_subset=300, clients=3, partition="classes", classes_per_client=4)
    ds = cfg.load_data()
    expected = class_counts(ds.train_y, cfg.shards(ds.train_y), 10)
    assert record["class_counts"] == expected
    assert record["shard_sizes"] == [sum(c) for c in expected]
    assert (record["partition"], record["label"], record["seed"], record["clients"]) == ("classes", "4 classes each", 0, 3)
    assert all(sum(1 for n in row if n) == 4 for row in expected)


def test_a_spec_makes_the_partition_an_axis_of_its_grid():
    from bench import spec

    table = spec.tomllib.loads(spec.resolve("smoke").read_text())["sweep"]
    table["cells"] = {"models": ["smallcnn"], "clients": [3], "partitions": [
        {"partition": "iid"}, {"partition": "dirichlet", "partition_alpha": 0.1},
        {"partition": "classes", "classes_per_client": 2, "partition_min_samples": 5}]}
    cells = spec.parse(table, name="x").cells
    assert [c.study for c in cells] == ["x/smallcnn-c3-iid", "x/smallcnn-c3-dir0.1", "x/smallcnn-c3-cls2-min5"]
    assert [c.config().partition_scheme().label() for c in cells] == ["iid", "Dirichlet α=0.1", "2 classes each"]
    assert cells[2].config().partition_min_samples == 5
    table["cells"]["partitions"] = [{"partition": "dirichlet"}]
    with pytest.raises(UsageError, match=r"^sweep\.cells\.partitions\[0\]\.partition_alpha: partition = dirichlet needs"):
        spec.parse(table, name="x")
    table["cells"]["partitions"] = [{"partition": "iid", "alpha": 0.1}]
    with pytest.raises(UsageError, match=r"^sweep\.cells\.partitions\[0\]\.alpha: unknown name 'alpha'"):
        spec.parse(table, name="x")
    table["cells"]["partitions"] = [{"partition": "iid"}, {}]
    with pytest.raises(UsageError, match=r"^sweep\.cells\.partitions: expected a non-empty list of tables"):
        spec.parse(table, name="x")
    table["cells"]["partitions"] = [{"partition": "iid"}, {"partition": "iid"}]
    with pytest.raises(UsageError, match=r"^sweep\.cells\.partitions: lists a partition twice"):
        spec.parse(table, name="x")
    del table["cells"]["partitions"]
    table["fixed"] = table.get("fixed", {}) | {"partition": "dirichlet", "partition_alpha": 0.0}
    with pytest.raises(UsageError, match=r"^sweep\.fixed\.partition_alpha: must be a number > 0"):
        spec.parse(table, name="x")


def test_the_noniid_spec_pairs_two_gates_with_the_baseline_in_each_partition():
    from bench import spec

    noniid, beyond = spec.load("noniid"), spec.load("beyond")
    assert [c.study for c in noniid.cells] == ["noniid/smallcnn-c5-iid", "noniid/smallcnn-c5-dir0.5",
                                               "noniid/smallcnn-c5-dir0.1"]
    assert noniid.seeds == (0, 1, 2) and noniid.trials == 3
    assert [(s.policy, dict(s.args), s.fields) for s in noniid.settings] == [
        ("loss_threshold", {"threshold": 0.1}, ()), ("loss_threshold", {"threshold": 0.1}, (("refresh_threshold", 0.05),))]
    # beyond's recipe, but for the clients and the partition
    differ = {"clients", "partition", "partition_alpha"}
    for cell in noniid.cells:
        mine, theirs = cell.config().to_params(), beyond.cells[0].config().to_params()
        assert {k for k in mine if mine[k] != theirs[k]} <= differ
