"""Sweep specs: the shipped ones, and every kind of bad spec rejected with a one-line message."""

import copy

import pytest

from bench import spec
from bench.errors import UsageError

SMOKE = spec.tomllib.loads(spec.resolve("smoke").read_text())["sweep"]


def test_shipped_specs_define_their_grids():
    assert spec.shipped() == ["beyond", "frontier", "noniid", "paper", "paper-grid", "quick", "smoke"]
    smoke, quick, paper = spec.load("smoke"), spec.load("quick"), spec.load("paper-grid")
    beyond = spec.load("beyond").cells[0].config()
    assert (beyond.model, beyond.clients, beyond.train_subset, beyond.test_subset) == ("smallcnn", 1, 10000, None)
    assert [c.study for c in smoke.cells] == ["smoke/smallcnn-c1", "smoke/smallcnn-c2"]
    assert smoke.trials == 3 and smoke.sampler == "tpe" and smoke.seeds == (0, 1)
    assert [c.study for c in quick.cells] == ["quick/smallcnn-c1", "quick/smallcnn-c2"]
    assert quick.trials == 8 and quick.seeds == (0, 1, 2) and quick.margin_pp == 0.5 and quick.seeds_min is None
    assert [(s.policy, s.quant_up, s.quant_down) for s in quick.settings] == [
        ("loss_threshold", "fp8_e4m3", "fp8_e5m2")] * 2 + [("periodic", "fp8_e4m3", "fp8_e5m2")]
    assert quick.cells[0].config().width == 0.5 and quick.cells[0].config().dataset == "cifar10"
    assert len(paper.cells) == 9 and {c.config().model for c in paper.cells} == {"vgg11", "vgg13", "resnet18"}
    assert {c.config().clients for c in paper.cells} == {1, 5, 10}
    base = paper.cells[0].config()
    assert (base.epochs, base.lr, base.lr_milestones, base.batch_size) == (200, 0.05, (60, 120, 160), 128)
    assert paper.seeds == (0, 1, 2)
    assert [(s.policy, dict(s.args), s.quant_up, s.quant_down) for s in paper.settings] == [
        ("loss_threshold", {"threshold": t}, "fp8_e4m3", "fp8_e5m2") for t in (0.01, 0.02, 0.05)] + [
        ("periodic", {"period": p}, "fp32", "fp32") for p in (5, 20)]


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
    ("seeds", [], "sweep.seeds: expected a non-empty list of seeds, got []"),
    ("seeds", [0, -1], "sweep.seeds: every seed must be an integer >= 0, got -1"),
    ("seeds", [0, 1, 0], "sweep.seeds: lists a seed twice, got [0, 1, 0]"),
    ("seeds", 3, "sweep.seeds: expected a non-empty list of seeds, got 3"),
    ("seeds", {"min": 1, "max": 4}, "sweep.seeds: needs integers 2 <= min <= max, got min = 1, max = 4"),
    ("seeds", {"min": 5, "max": 4}, "sweep.seeds: needs integers 2 <= min <= max, got min = 5, max = 4"),
    ("seeds", {"min": 3}, "sweep.seeds: adaptive seeds are { min = A, max = B }, got keys ['min']"),
    ("seeds", {"min": 3, "max": 4, "step": 1}, "sweep.seeds: adaptive seeds are { min = A, max = B }"),
    ("margin_pp", -0.5, "sweep.margin_pp: must be a number >= 0, got -0.5"),
    ("margin_pp", "half", "sweep.margin_pp: must be a number >= 0, got 'half'"),
    ("fixed.lr_schedule", "exponential", "sweep.fixed.lr_schedule: unknown name 'exponential'"),
    ("fixed.eval_every", 0, "sweep.fixed.eval_every: must be an integer >= 1, got 0"),
    ("fixed.seed", 1, "sweep.fixed.seed: unknown name 'seed'"),
    ("settings", [{"policy": "loss_treshold"}], "sweep.settings[0].policy: unknown name 'loss_treshold'; did you mean 'loss_threshold'?"),
    ("settings", [{"policy": "always", "quant_up": "fp8_e4m4"}], "sweep.settings[0].quant_up: unknown name 'fp8_e4m4'"),
    ("settings", [{"policy": "periodic", "args": {"perod": 2}}], "sweep.settings[0].args.perod: unknown name 'perod'; did you mean 'period'?"),
    ("settings", [{"policy": "periodic", "args": {"period": 0}}], "sweep.settings[0].args.period: must be an integer >= 1, got 0"),
    ("settings", [{"policy": "periodic", "codec": "fp16"}], "sweep.settings[0].codec: unknown name 'codec'"),
    ("settings", [{"quant_up": "fp16"}], "sweep.settings[0].policy: missing; name a policy"),
    ("settings", [{"policy": "always", "cache_vews": 2}], "sweep.settings[0].cache_vews: unknown name 'cache_vews'; did you mean 'cache_views'"),
    ("settings", [{"policy": "always", "cache_views": 0}], "sweep.settings[0].cache_views: must be an integer >= 1, got 0"),
    ("settings", [{"policy": "always", "seed": 3}], "sweep.settings[0].seed: unknown name 'seed'"),
    ("settings", [{"policy": "loss_threshold", "args": {"signal": "val"}}], "sweep.settings[0].val_fraction: must be > 0 when policy.signal = val"),
    ("settings", [{"policy": "periodic", "cache_noise": 0.1}, {"policy": "periodic", "cache_noise": 0.1}], "sweep.settings[1]: repeats an earlier setting, periodic {} fp32/fp32 cache_noise=0.1"),
    ("settings", [{"policy": "periodic"}, {"policy": "periodic", "args": {"period": 3}}], "sweep.settings[1]: repeats an earlier setting"),
    ("settings", [{"policy": "periodic", "args": {"period": 2}}, {"policy": "periodic", "args": {"period": 4}}, {"policy": "periodic", "args": {"period": 5}}],
     "sweep.trials: must be an integer >= 4 (the baseline and 3 explicit setting(s)), got 3"),
])
def test_a_bad_spec_names_the_field(path, value, message):
    with pytest.raises(UsageError) as err:
        spec.parse(edit(path, value), name="bad")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_adaptive_seeds_train_seeds_from_0_up_to_max_and_log_their_plan():
    adaptive = spec.parse(edit("seeds", {"min": 3, "max": 6}), name="a")
    assert (adaptive.seeds, adaptive.seeds_min) == ((0, 1, 2, 3, 4, 5), 3)
    assert adaptive.plan_params() == {"seeds_min": 3, "seeds_max": 6}
    assert spec.parse(edit("seeds", [4, 7]), name="f").plan_params() == {}


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


def test_explicit_settings_join_the_space_and_run_after_the_baseline_and_a_settings_only_spec_counts_them():
    table = {k: v for k, v in SMOKE.items() if k not in ("search", "trials")}
    table["settings"] = [{"policy": "always"},  # the baseline, listed: it runs first once
                         {"policy": "loss_threshold", "args": {"threshold": 0.02}, "quant_up": "fp8_e4m3",
                          "quant_down": "fp8_e5m2"},
                         {"policy": "periodic", "args": {"period": 4}}]
    s = spec.parse(table, name="x")
    assert s.trials == 3  # the baseline and two settings
    assert s.policies == ("always", "loss_threshold", "periodic") and s.quant_up == ("fp32", "fp8_e4m3")
    lt, per = s.settings
    assert lt.choice() == {"policy": "loss_threshold", "policy_args": (("threshold", 0.02),),
                           "quant_up": "fp8_e4m3", "quant_down": "fp8_e5m2"}
    assert s.fixed_params(lt) == {"policy": "loss_threshold", "loss_threshold.reference": "last_full",
                                  "loss_threshold.threshold": 0.02, "quant_up": "fp8_e4m3", "quant_down": "fp8_e5m2"}
    assert s.fixed_params(per) == {"policy": "periodic", "periodic.period": 4, "quant_up": "fp32", "quant_down": "fp32"}


def test_floats_are_rounded_to_what_matters_and_the_space_is_counted_after_rounding():
    log = spec.Range(low=0.02, high=0.5, log=True)
    assert log.round(0.040013105825410386) == 0.04 and log.round(0.123456) == 0.12
    # 0.020 .. 0.099 (80 values) and 0.10 .. 0.50 (41)
    assert log.size() == 121
    linear = spec.Range(low=0.0, high=1.0)
    assert linear.round(0.123456) == 0.12 and linear.size() == 101
    assert spec.Range(low=1, high=3).size() == 3 and spec.Range(choices=("a", "b")).size() == 2
    smoke = spec.load("smoke")  # (always 1 + periodic 3 + loss_threshold 2 x 221) x 3 x 3 codecs
    assert smoke.size() == (1 + 3 + 2 * 221) * 9


def test_a_setting_may_set_engine_fields_of_its_own_and_is_then_outside_the_search_space():
    table = {k: v for k, v in SMOKE.items() if k not in ("search", "trials")}
    gate = {"policy": "loss_threshold", "args": {"threshold": 0.1}, "quant_up": "fp8_e4m3", "quant_down": "fp8_e5m2"}
    table["settings"] = [gate, gate | {"cache_noise": 0.1}, gate | {"args": {"threshold": 0.1, "signal": "val"},
                                                                     "val_fraction": 0.1}]
    s = spec.parse(table, name="x")
    plain, noisy, val = s.settings
    assert s.trials == 4 and plain.fields == () and noisy.fields == (("cache_noise", 0.1),)
    assert noisy.choice()["cache_noise"] == 0.1 and s.cells[0].config(**noisy.choice()).cache_noise == 0.1
    assert s.cells[0].config(**val.choice()).val_fraction == 0.1 and s.cells[0].config(**plain.choice()).val_fraction == 0
    # Optuna's enqueued params tell the two apart; the sampler never proposes a field of a setting.
    assert s.fixed_params(noisy) == s.fixed_params(plain) | {"field.cache_noise": 0.1}
    assert s.size() == (1 + 2 * 221) * 2 * 2 + 2  # always and loss_threshold x 2 codecs each way, and the two outside



def test_a_setting_that_gives_a_field_outside_the_search_space_is_told_apart_by_it():
    table = {k: v for k, v in SMOKE.items() if k not in ("search", "trials")}
    gate = {"policy": "loss_threshold", "args": {"threshold": 0.1}, "quant_up": "fp8_e4m3"}
    table["settings"] = [gate, gate | {"args": {"threshold": 0.1, "max_cached": 2}}]
    s = spec.parse(table, name="x")
    plain, capped = s.settings
    assert s.fixed_params(capped) == s.fixed_params(plain) | {"loss_threshold.max_cached": 2}
