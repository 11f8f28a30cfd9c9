"""The frontier search: RunConfig fields and codec stage arguments as searchable distributions, paired
objectives with the verdict as the sampler's constraint, and an ablation derived from the best
feasible setting."""

import copy
import json
import math

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from bench import ablation, names, paired, spec as specs, tuning
from bench.errors import UsageError
from reports import ablation as ablation_report, report
from tests.conftest import run_cli

FRONTIER = specs.tomllib.loads(specs.resolve("frontier").read_text())["sweep"]


def edit(path: str, value):
    """The frontier spec's table with the value at dotted `path` replaced (None: removed)."""
    table = copy.deepcopy(FRONTIER)
    *parents, key = path.split(".")
    node = table
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(key)
    else:
        node[key] = value
    return table


def test_engine_fields_and_stage_arguments_are_searched_as_optuna_distributions():
    s = specs.load("frontier")
    assert dict(s.fields) == {"cache_mixup": specs.Range(choices=(0.0, 0.2)),
                              "refresh_threshold": specs.Range(choices=(None, 0.05))}  # "off" is None
    assert s.codec_space("topk")["error_feedback"] == specs.Range(choices=(False, True))
    assert (s.objectives, s.ablation, s.seeds_min, s.seeds) == ("paired", True, 3, (0, 1, 2, 3, 4))
    study = optuna.create_study(directions=list(tuning.PAIRED_DIRECTIONS))
    study.enqueue_trial({"policy": "loss_threshold", "quant_up": "topk", "quant_down": "nvfp4"})
    trial = study.ask()
    choice = tuning.suggest(trial, s)
    assert trial.distributions["field.cache_mixup"] == CategoricalDistribution([0.0, 0.2])
    assert trial.distributions["field.refresh_threshold"] == CategoricalDistribution([None, 0.05])
    assert trial.distributions["quant_up.topk.error_feedback"] == CategoricalDistribution([False, True])
    assert choice["cache_mixup"] in (0.0, 0.2) and dict(choice["quant_up_args"])["error_feedback"] in (False, True)
    s.cells[0].config(**choice)  # a valid run
    # The space's size counts the fields where they can act: 4 times under loss_threshold, once under
    # always (it never leaves FULL, so the cache options are inert); without them, the mixup setting
    # is one outside the search space.
    codecs = math.prod(sum(math.prod(r.size() for r in s.codec_space(c).values()) for c in getattr(s, d))
                       for d in ("quant_up", "quant_down"))
    gate = math.prod(r.size() for r in s.space("loss_threshold").values())
    assert s.size() == codecs * (1 + 4 * gate)
    assert specs.parse(edit("search.fields", None), name="f").size() == codecs * (1 + gate) + 1


def test_an_explicit_setting_gives_codec_arguments_and_its_params_tell_the_sampler_every_searched_value():
    table = edit("settings", [{"policy": "always", "quant_up": "topk", "quant_down": "nvfp4",
                               "quant_up_args": {"k": 0.05, "error_feedback": True}, "cache_mixup": 0.2}])
    s = specs.parse(table, name="f")
    (setting,) = s.settings
    assert setting.quant_up_args == (("error_feedback", True), ("k", 0.05))
    assert setting.choice()["quant_up_args"] == (("error_feedback", True), ("k", 0.05))
    params = s.fixed_params(setting)
    assert {k: v for k, v in params.items() if k.startswith(("quant_up.", "field."))} == {
        "quant_up.topk.k": 0.05, "quant_up.topk.inner": "fp8_e4m3", "quant_up.topk.error_feedback": True,
        "field.cache_mixup": 0.2, "field.refresh_threshold": None}
    assert s._searched(setting)  # every value lies in the searched ranges


@pytest.mark.parametrize("path, value, message", [
    ("search.fields", {"cache_mixop": {"choices": [0.0]}}, "sweep.search.fields.cache_mixop: unknown name 'cache_mixop'; did you mean 'cache_mixup'"),
    ("search.fields", {"cache_views": {"low": 0, "high": 2}}, "sweep.search.fields.cache_views: 0 is not allowed (cache_views: must be an integer >= 1, got 0)"),
    ("search.fields", {"model": {"choices": ["vgg11"]}}, "sweep.search.fields.model: unknown name 'model'"),
    ("search.codec_ranges.topk", {"entropy": {"choices": ["lz4"]}}, "sweep.search.codec_ranges.topk.entropy: 'lz4' is not allowed"),
    ("search.codec_ranges.topk", {"error_fedback": {"choices": [True]}}, "sweep.search.codec_ranges.topk.error_fedback: unknown name 'error_fedback'; did you mean 'error_feedback'?"),
    ("objectives", "relative", "sweep.objectives: unknown name 'relative'"),
    ("search.quant_up", ["topk", "nvfp4"], "sweep.search.quant_up: with ablation it must list fp8_e4m3"),
    ("search.fields", {"cache_mixup": {"choices": [0.2, 0.4]}}, "sweep.search.fields.cache_mixup: with ablation its choices must hold the cell's value 0.0"),
    ("settings", [{"policy": "always", "quant_up": "topk", "quant_up_args": {"kk": 0.1}}], "sweep.settings[0].quant_up_args.kk: unknown name 'kk'"),
    ("settings", [{"policy": "always", "quant_up": "topk", "quant_up_args": {"k": 2.0}}], "sweep.settings[0].quant_up_args.k:"),
])
def test_a_bad_frontier_spec_names_the_field(path, value, message):
    table = edit(path, value)
    if path != "settings":  # the explicit settings' codecs would join the lists
        table.pop("settings")
    if path == "search.quant_up":  # and its ranges
        table["search"]["codec_ranges"].pop("fp8_e4m3")
    with pytest.raises(UsageError) as err:
        specs.parse(table, name="bad")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ablation_needs_paired_objectives_and_a_bad_spec_exits_2_writing_nothing(tmp_path):
    with pytest.raises(UsageError, match="sweep.ablation: needs objectives = \"paired\""):
        specs.parse(edit("objectives", None), name="bad")
    path = tmp_path / "bad.toml"
    path.write_text(specs.resolve("frontier").read_text().replace('objectives = "paired"', 'objectives = "both"'))
    out = run_cli(["sweep", "--spec", str(path)], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: sweep.objectives: unknown name 'both'; did you mean 'absolute'? (allowed: absolute, paired)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def _fake_search(constrained: bool) -> tuple[int, int, optuna.Study]:
    """40 proposals of x in [0, 1] by the frontier's sampler, reduction 10 x and difference -x, feasible
    for x <= 0.3 (told as the verdict when `constrained`): (feasible among the 10 random start-up
    proposals, feasible among the 30 after them, the study)."""
    study = optuna.create_study(directions=list(tuning.PAIRED_DIRECTIONS))
    study.sampler = tuning.make_sampler(specs.load("frontier"), seed=0)
    feasible = []
    for _ in range(40):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        if constrained:
            paired.set_verdict(trial, x - 0.3)
        study.tell(trial, (10 * x, -x))
        feasible.append(x <= 0.3)
    return sum(feasible[:10]), sum(feasible[10:]), study


def test_the_sampler_is_told_the_verdict_and_moves_its_proposals_into_the_feasible_region():
    start, later, study = _fake_search(constrained=True)
    for t in study.trials:  # infeasible settings are marked so, for the sampler and in the storage
        assert t.constraints == {"verdict": pytest.approx(t.params["x"] - 0.3)}
        assert t.user_attrs[paired.CONSTRAINT] == pytest.approx(t.params["x"] - 0.3)
    assert start / 10 < 0.5 and later / 30 >= 0.6  # the start-up draws are random; then it learns
    _, blind, _ = _fake_search(constrained=False)  # the same sampler, not told: it chases the reduction
    assert later >= 2 * blind, (later, blind)
    assert all(t.params["x"] <= 0.3 for t in study.best_trials)  # the front holds feasible trials only


BEST = {"policy": "loss_threshold", "policy_args": (("max_cached", 2), ("threshold", 0.3)),
        "quant_up": "topk", "quant_up_args": (("error_feedback", True), ("k", 0.05)),
        "quant_down": "mxfp4_e2m1", "quant_down_args": (), "cache_mixup": 0.2, "refresh_threshold": 0.05}


def test_the_ablation_takes_away_each_ingredient_the_setting_has_and_nothing_it_lacks():
    cell = specs.load("frontier").cells[0]
    steps, skipped = ablation.steps(BEST, cell)
    assert [s.label for s in steps] == [
        "policy: loss_threshold -> always",
        "loss_threshold.max_cached: 2 -> 0",
        "loss_threshold.threshold: 0.3 -> 0.02",
        "quant_up: topk -> fp8_e4m3",
        "quant_up.error_feedback: True -> False",
        "quant_up.k: 0.05 -> 0.1",
        "quant_down: mxfp4_e2m1 -> fp8_e5m2",
        "cache_mixup: 0.2 -> 0.0",
        "refresh_threshold: 0.05 -> None",
    ] and skipped == []
    by_label = {s.label: s.choice for s in steps}
    # Each step differs from the setting in the one part it names.
    assert by_label["quant_up: topk -> fp8_e4m3"] == ablation.normal(
        BEST | {"quant_up": "fp8_e4m3", "quant_up_args": (("error_feedback", True),)})  # the stage stays
    assert by_label["cache_mixup: 0.2 -> 0.0"] == ablation.normal(BEST | {"cache_mixup": 0.0})
    # Nothing listed by hand: an option the setting uses is ablated, one it does not use is not.
    noisy = {"policy": "loss_threshold", "quant_up": "fp8_e4m3", "quant_down": "fp32", "cache_noise": 0.1}
    assert [s.label for s in ablation.steps(noisy, cell)[0]] == ["policy: loss_threshold -> always",
                                                                 "cache_noise: 0.1 -> 0.0"]
    # Under always (no FORWARD or CACHED epoch) the cache options do nothing, so there is nothing to take away.
    assert ablation.steps(noisy | {"policy": "always"}, cell) == ([], [])
    # A step RunConfig rejects is left out with its reason.
    val = {"policy": "loss_threshold", "policy_args": (("signal", "val"),), "quant_up": "fp8_e4m3",
           "quant_down": "fp8_e5m2", "val_fraction": 0.1}
    steps, skipped = ablation.steps(val, cell)
    assert [s.label for s in steps] == ["policy: loss_threshold -> always", "loss_threshold.signal: val -> train"]
    assert skipped == ["val_fraction: 0.1 -> 0.0: val_fraction: must be > 0 when policy.signal = val "
                       "(the validation loss needs a slice)"]


def test_the_best_feasible_setting_is_the_largest_reduction_with_a_non_inferior_verdict():
    study = optuna.create_study(directions=list(tuning.PAIRED_DIRECTIONS))

    def add(values, constraint, choice):
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, values=values, user_attrs={
            paired.CONSTRAINT: constraint, paired.CHOICE: json.dumps(choice)}))

    add((1.0, 0.0), -0.5, specs.BASELINE)
    add((40.0, -2.0), 1.2, BEST)  # the largest reduction, but inferior
    add((9.0, -0.1), -0.1, BEST | {"cache_mixup": 0.0})
    add((12.0, 0.1), -0.3, BEST | {"refresh_threshold": None})
    best = paired.best_feasible(study.get_trials())
    assert best.number == 3
    assert paired.best_feasible(study.get_trials()[:2]) is None  # the baseline is no setting to ablate


SPEC = """
[sweep]
trials = 3
seeds = [0, 1]
objectives = "paired"
ablation = true
margin_pp = 100
cells = { models = ["smallcnn"], clients = [1] }
fixed = { dataset = "synthetic", width = 0.25, epochs = 1, batch_size = 32, warmup_epochs = 0 }
[sweep.search]
policies = ["periodic"]
quant_up = ["fp8_e4m3"]
quant_down = ["fp8_e5m2"]
[sweep.search.ranges.periodic]
period = { choices = [2] }
[sweep.search.fields]
cache_noise = { choices = [0.0, 0.1] }
[[sweep.settings]]
policy = "periodic"
args = { period = 2 }
quant_up = "fp8_e4m3"
quant_down = "fp8_e5m2"
cache_noise = 0.1
"""


def test_a_paired_sweep_reports_reduction_and_difference_then_runs_the_ablation_of_its_best(tmp_path):
    """A 100 pp margin makes every setting feasible: the best is the largest reduction, and the sweep
    then trains one trial per ablation step, tagged in MLflow. The step back to periodic's default
    period (3) lies outside the spec's choices (2): it still runs, that param left out of Optuna's."""
    (tmp_path / "tiny.toml").write_text(SPEC)
    out = run_cli(["sweep", "--spec", "tiny.toml", "--workers", "1"], tmp_path)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="tiny/smallcnn-c1", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = study.get_trials()
    baseline = trials[0]
    assert baseline.values == [1.0, 0.0] and baseline.constraints == {"verdict": -100.0}
    for t in trials[1:]:
        if t.user_attrs.get("duplicate_of") is None:
            bytes_ = t.user_attrs[tuning.OBJECTIVES[1]]
            assert t.values[0] == pytest.approx(baseline.user_attrs[tuning.OBJECTIVES[1]] / bytes_)
    plan = study.user_attrs[paired.ABLATION]
    best = study.trials[plan["of"]]
    expected, _ = ablation.steps(json.loads(best.user_attrs[paired.CHOICE]), specs.load(str(tmp_path / "tiny.toml")).cells[0])
    assert plan["steps"] == [s.label for s in expected] and plan["steps"]
    steps = [t for t in trials if paired.ABLATION in t.user_attrs]
    assert [t.user_attrs[paired.ABLATION] for t in steps] == plan["steps"]
    assert all(t.state == TrialState.COMPLETE for t in steps)
    assert [t.params.get("periodic.period") for t in steps] == [None, None, 2]  # always; 3 is no choice; kept
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id],
                              f"tags.ablation != '' and {names.role_is(names.TRIAL_ROLE)}")
    assert sorted(r.data.tags["ablation"] for r in runs) == sorted(plan["steps"])  # a trial run per step
    assert {r.data.tags["ablation_of"] for r in runs} == {str(best.number)}
    # The report's ablation table: the full setting, then each step with its reduction and verdict.
    built = report.build(f"sqlite:///{tmp_path / 'mlflow.db'}", "tiny", tmp_path / "report", log_artifacts=False)
    table = pd.read_csv(tmp_path / "report" / "ablation.csv")
    assert list(table["step"]) == [ablation_report.FULL, *plan["steps"]]
    assert set(table["verdict"]) <= {"non-inferior", "reference"} and table["comm_x"].notna().all()
    assert "Ablation: tiny/smallcnn-c1" in built.index.read_text()
