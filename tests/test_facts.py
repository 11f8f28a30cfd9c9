"""One source for each fact: the baseline, the engine options, the metric and tag names and the
mechanisms' families are each written once, and everything else reads them from there."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from bench import config, names, parser
from bench.config import BASELINE, RunConfig
from bench.errors import UsageError
from policies import POLICIES
from reports import frames, labels
from tests.reports_tests.runs import run, settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "policies", "quantizers", "reports")
# Every name bench/names.py spells that could not be mistaken for a plain word: metric names
# (final/test_acc, comm/up_bytes, ...) and the tags with a dot (splitbench.role, mlflow.parentRunId).
SPELLED = ({v for k, v in vars(names).items() if k.isupper() and isinstance(v, str) and ("/" in v[:-1] or "." in v)}
           | {names.comm(kind) for kind in names.COMM_KINDS + names.WIRE_KINDS})
# Modules that still spell some of those names themselves; none may join them.
SPELLING_THEIR_OWN = {"bench/sweep.py", "bench/tuning.py"}


def literals(path: Path) -> set[str]:
    """The string constants of a module's code, its docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs}


def test_metric_and_tag_names_are_spelled_in_bench_names_alone():
    assert names.FINAL_TEST_ACC in SPELLED and names.ROLE in SPELLED and names.comm("up") in SPELLED
    spelling = {str(path.relative_to(ROOT)): sorted(literals(path) & SPELLED)
                for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
                if path != ROOT / "bench" / "names.py"}
    others = {path: found for path, found in spelling.items() if found and path not in SPELLING_THEIR_OWN}
    assert not others, f"names spelled outside bench/names.py: {others}"


def test_the_baseline_is_a_runs_defaults_and_every_reader_takes_it_from_bench_config():
    from bench import spec

    assert {k: getattr(RunConfig(dataset="synthetic"), k) for k in BASELINE} == BASELINE
    assert spec.BASELINE == BASELINE
    assert frames.BASELINE == (BASELINE["policy"], BASELINE["quant_up"], BASELINE["quant_down"])
    assert labels.baseline_label() == f"{BASELINE['policy']}, {BASELINE['quant_up']}/{BASELINE['quant_down']}"


def test_every_run_flag_says_what_its_field_declares():
    flags = {a.dest: a for a in parser.build_parser()._subparsers._group_actions[0].choices["run"]._actions}
    for f in dataclasses.fields(RunConfig):
        if not f.metadata:
            continue  # a hand-written flag (lr_milestones, data_dir, the arguments)
        text = flags[f.name].help
        assert text.startswith(config.help_text(f.name).replace("%", "%%")), f.name
        allowed = config.allowed(f.name)
        assert ("; one of: " in text) == (allowed is not None), f.name
        if allowed is not None:
            assert f"; one of: {', '.join(allowed)}" in text, f.name


def test_the_reports_engine_options_are_the_mechanisms_runconfig_declares():
    assert frames.ENGINE_OPTIONS == {f.name: f.default for f in dataclasses.fields(RunConfig) if "off" in f.metadata}
    assert set(frames.ENGINE_OPTIONS) >= {"val_fraction", "cache_mixup", "cache_views", "refresh_threshold"}
    for option, off in frames.ENGINE_OPTIONS.items():
        on = "0.5" if off is None else str(off + 1)
        family = settings([run(), run("periodic", options={option: on})])["family"].tolist()[1]
        assert family == f"periodic +{option}"


@pytest.mark.parametrize("name", POLICIES.names())
def test_a_policy_at_its_defaults_is_its_own_family(name):
    defaults = {f.name: str(f.default) for f in dataclasses.fields(POLICIES.get(name))}
    assert labels.family(name, defaults, []) == name


def test_a_mechanism_switched_away_from_its_declared_default_names_the_family():
    assert labels.family("loss_threshold", {"reference": "previous", "max_cached": "3"}, []) == (
        "loss_threshold +reference=previous +max_cached")
    assert labels.family("loss_threshold", {"signal": "val"}, ["val_fraction", "cache_noise"]) == (
        "loss_threshold +signal=val +cache_noise")


def test_a_mechanism_the_report_cannot_name_stops_it_with_an_error_naming_it():
    with pytest.raises(UsageError, match="policy 'every_third'"):
        settings([run(), run("every_third")])
    with pytest.raises(UsageError, match="codec 'int3'"):
        settings([run(), run(up="int3")])
    with pytest.raises(UsageError, match="param 'cache_dropout'"):
        settings([run(), run(options={"cache_dropout": "0.1"})])
