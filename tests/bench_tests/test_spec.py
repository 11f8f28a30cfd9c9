"""Sweep specs: the shipped ones, and every kind of bad spec rejected with a one-line message."""

import copy

import pytest

from bench import spec
from bench.errors import UsageError

SMOKE = spec.tomllib.loads(spec.resolve("smoke").read_text())["sweep"]


def test_shipped_specs_define_their_grids():
    assert spec.shipped() == ["beyond", "paper", "quick", "smoke"]
    smoke, quick, paper = spec.load("smoke"), spec.load("quick"), spec.load("paper")
    beyond = spec.load("beyond").cells[0].config()
    assert (beyond.model, beyond.clients, beyond.train_subset, beyond.test_subset) == ("smallcnn", 1, 10000, None)
    assert [c.study for c in smoke.cells] == ["smoke/smallcnn-c1", "smoke/smallcnn-c2"]
    assert smoke.trials == 3 and smoke.sampler == "tpe"
    assert [c.study for c in quick.cells] == ["quick/smallcnn-c1", "quick/smallcnn-c2", "quick/vgg11-c1",
                                              "quick/vgg11-c2"]
    assert len(quick.cells) * quick.trials >= 20
    assert quick.cells[0].config().width == 0.5 and quick.cells[2].config().width == 0.25
    assert quick.cells[0].config().dataset == "cifar10"
    assert len(paper.cells) == 9 and {c.config().model for c in paper.cells} == {"vgg11", "vgg13", "resnet18"}
    assert {c.config().clients for c in paper.cells} == {1, 5, 10}
    base = paper.cells[0].config()
    assert (base.epochs, base.lr, base.lr_milestones, base.batch_size) == (200, 0.05, (60, 120, 160), 128)


def test_the_baseline_is_always_in_the_search_space_and_ranges_merge_with_declared_ones():
    s = spec.parse(SMOKE | {"search": {"policies": ["periodic"], "quant_up": ["fp8_e4m3"], "quant_down": ["fp8_e5m2"]}},
                   name="x")
    assert s.policies == ("always", "periodic") and s.quant_up == ("fp32", "fp8_e4m3")
    assert s.space("periodic") == {"period": spec.Range(low=1, high=20)}  # declared by the policy
    assert spec.load("smoke").space("periodic") == {"period": spec.Range(low=1, high=3)}  # overridden


def edit(path, value):
    table = copy.deepcopy(SMOKE)
    *parents, last = path.split(".")
    node = table
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return table


@pytest.mark.parametrize("path, value, message", [
    ("cells.models", ["vgg12"], "sweep.cells.models: unknown name 'vgg12'; did you mean 'vgg13' or 'vgg11'?"),
    ("cells.clients", [0, 2], "sweep.cells.clients: every count must be >= 1, got [0, 2]"),
    ("cells.modles", ["vgg11"], "sweep.cells.modles: unknown name 'modles'; did you mean 'models'?"),
    ("trials", 0, "sweep.trials: must be an integer >= 1, got 0"),
    ("sampler", "nsga3", "sweep.sampler: unknown name 'nsga3'; did you mean 'nsga2'?"),
    ("fixed.epoch", 3, "sweep.fixed.epoch: unknown name 'epoch'; did you mean 'epochs' or 'warmup_epochs'?"),
    ("fixed.epochs", 0, "sweep.fixed.epochs: must be a number >= 1, got 0"),
    ("fixed.cut", 9, "sweep.fixed.cut: must be between 1 and 6 for smallcnn, got 9"),
    ("fixed.policy", "always", "sweep.fixed.policy: unknown name 'policy'"),
    ("models.smallcnn", {"cut": 7}, "sweep.models.smallcnn.cut: must be between 1 and 6 for smallcnn, got 7"),
    ("models.vgg11", {"width": 0.5}, "sweep.models: unknown name 'vgg11'"),
    ("search.policies", ["loss_treshold"], "sweep.search.policies: unknown name 'loss_treshold'; did you mean 'loss_threshold'?"),
    ("search.quant_up", ["fp8_e4m4"], "sweep.search.quant_up: unknown name 'fp8_e4m4'; did you mean"),
    ("search.ranges.periodic", {"period": {"low": 4, "high": 2}}, "sweep.search.ranges.periodic.period: low must be <= high, got low=4 high=2"),
    ("search.ranges.periodic", {"period": {"low": 0, "high": 2}}, "sweep.search.ranges.periodic.period: 0 is not allowed (policy.period: must be an integer >= 1"),
    ("search.ranges.periodic", {"perod": {"low": 1, "high": 2}}, "sweep.search.ranges.periodic.perod: unknown name 'perod'; did you mean 'period'?"),
    ("search.ranges.loss_threshold", {"threshold": {"low": 0, "high": 1, "log": True}}, "sweep.search.ranges.loss_threshold.threshold: log must be true or false, and a log range needs low > 0"),
    ("search.ranges.loss_threshold", {"reference": {"choices": ["last"]}}, "sweep.search.ranges.loss_threshold.reference: 'last' is not allowed"),
    ("search.ranges.loss_treshold", {}, "sweep.search.ranges: unknown name 'loss_treshold'; did you mean 'loss_threshold'?"),
])
def test_a_bad_spec_names_the_field(path, value, message):
    with pytest.raises(UsageError) as err:
        spec.parse(edit(path, value), name="bad")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_spec_names_resolve_to_shipped_files_or_paths(tmp_path):
    assert spec.resolve("quick") == spec.SHIPPED / "quick.toml"
    with pytest.raises(UsageError, match="spec: unknown name 'quik'; did you mean 'quick'?"):
        spec.resolve("quik")
    with pytest.raises(UsageError, match="spec: no such file"):
        spec.resolve(str(tmp_path / "nope.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("[sweep\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        spec.load(str(broken))
