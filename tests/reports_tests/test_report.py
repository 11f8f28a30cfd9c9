"""The report of a real tiny sweep read back from MLflow: files, page, artifacts, bad input."""

import re

import pandas as pd
import pytest

from reports import cli, noise, report as report_module
from tests.reports_tests.runs import run, study, trial


def test_the_report_has_every_figure_table_and_caption(report):
    page = (report / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 13  # 6 figures x 2 cells, and the 2-client cell's partition
    assert sum(png.endswith("-gates.png") for png in images) == 2
    assert [png.rsplit("-", 1)[1] for png in images[:6]] == ["decisions.png", "pareto.png", "flops.png", "modes.png",
                                                             "gates.png", "curves.png"]  # the decision first
    assert [png for png in images if png.endswith("-partition.png")] == ["smallcnn-w0-25-c2-clients2-partition.png"]
    for png in images:
        assert (report / png).stat().st_size > 10_000 and (report / png).with_suffix(".svg").exists()
    assert 'id="headline-table"' in page and "1.64x-106.7x" in page
    assert page.count("Made from sweep <code>quick</code>") == 1 + 13 + 2  # headline, figures, settings tables
    assert "synthetic data (paper: CIFAR-10)" in page and "1 unfinished or failed run is not shown" in page
    assert "2 trials repeating an earlier trial's setting are counted once" in page
    assert "non-inferior at 0.5 pp" in page and "ttost_paired" in page and "paper's rule (mean within 0.5 pp)" in page
    # A sweep recorded before verdicts: no margin tag, no adaptive seeds. The margin is 0.5, one look.
    headline = pd.read_csv(report / "headline.csv")
    assert headline["baseline_seeds"].tolist() == [2, 2] and headline["margin_pp"].tolist() == [0.5, 0.5]
    for name in ("comm", "total", "flops"):
        assert {f"{name}_x", f"{name}_paired_delta_pp", f"{name}_paired_ci_low", f"{name}_paired_ci_high",
                f"{name}_verdict", f"{name}_seeds", f"{name}_mean_rule_x", f"{name}_mean_rule_verdict"} <= set(headline)
    # Seed runs and the repeats are not trials: 3 settings a cell, each once.
    trials = pd.read_csv(report / "trials.csv")
    assert len(trials) == 6 and set(trials["clients"]) == {1, 2}
    assert trials["seeds"].tolist() == [2, 2, 1] * 2 and (trials["looks"] == 1).all()
    settings = pd.read_csv(report / "settings.csv")
    assert {"paired_delta_pp", "paired_ci_low", "paired_ci_high", "verdict", "paired_seeds", "rho"} <= set(settings)
    one = settings[settings["policy"] == "loss_threshold"]
    label = "loss_threshold(max_cached=0, reference=last_full, signal=train, threshold=0.3)"
    assert one["setting"].tolist() == [label] * 2
    assert (one["verdict"] == "noise unknown").all() and one["paired_ci_low"].isna().all()
    assert (one["paired_seeds"] == 1).all()
    two = settings[settings["policy"] == "periodic"]
    assert (two["paired_seeds"] == 2).all() and (two["paired_ci_low"] <= two["paired_ci_high"]).all()
    assert set(two["verdict"]) <= {noise.NON_INFERIOR, noise.UNDECIDED, noise.INFERIOR}
    assert "noise unknown" in page and "90% CI" in page
    table = (report / "findings.md").read_text().splitlines()
    assert sum(line.startswith("### ") for line in table) == 2
    assert sum(line.startswith("| ") for line in table) == 2 * (2 + 3)  # per cell: header, rule, 3 settings


def build(runs, tmp_path, monkeypatch, **kwargs):
    """The report of hand-written runs (tests/reports_tests/runs.py), as if read from MLflow."""
    monkeypatch.setattr(report_module.tracking, "load_runs", lambda uri, experiment, history=(): runs)
    out = tmp_path / "out"
    report_module.build("sqlite:///unused.db", "fake", out, log_artifacts=False, **kwargs)
    return out, (out / "index.html").read_text()


def test_a_sweep_of_one_seed_per_setting_renders_and_says_the_noise_is_unknown(tmp_path, monkeypatch):
    runs = [study(margin_pp=1.0), run(acc=0.90, comm=100),
            run("periodic", "fp8_e4m3", "fp8_e5m2", acc=0.895, comm=10, args={"period": 3}, modes=(0, 1, 2)),
            run("periodic", "fp8_e4m3", "fp8_e5m2", acc=0.80, comm=5, args={"period": 9}, modes=(0, 2, 2))]
    out, page = build(runs, tmp_path, monkeypatch)
    assert len(re.findall(r'<img src="([^"]+)"', page)) == 6 and (out / "vgg11-c2-clients1-decisions.png").exists()
    headline = pd.read_csv(out / "headline.csv").iloc[0]
    assert headline["margin_pp"] == 1.0  # the spec's margin, from the study run's tag
    assert pd.isna(headline["comm_x"]) and headline["comm_mean_rule_x"] == 10.0
    assert "none non-inferior at 1 pp: noise unknown" in page
    assert "Verdicts at 1 pp against the baseline: 0" in page and "One seed per setting: the noise is unknown" in page
    assert "dotted: 1 pp below it" in page
    settings = pd.read_csv(out / "settings.csv")
    assert settings["verdict"].tolist() == ["reference", noise.UNKNOWN, noise.UNKNOWN]
    assert "| periodic(period=3) | fp8_e4m3/fp8_e5m2 | 1 (1) | 89.50% | -0.50 | noise unknown |" in (
        (out / "findings.md").read_text())


def test_adaptive_seeds_and_a_margin_given_to_the_report(tmp_path, monkeypatch):
    base = (0.91, 0.93, 0.92)
    runs = [study(margin_pp=1.0), *trial(accs=base, comm=100, plan=(2, 5)),
            *trial("periodic", "fp8_e4m3", "fp8_e5m2", accs=tuple(b - 0.001 for b in base), comm=10,
                   args={"period": 3}, plan=(2, 5))]
    out, page = build(runs, tmp_path, monkeypatch, margin_pp=0.25)
    headline = pd.read_csv(out / "headline.csv").iloc[0]
    assert headline["margin_pp"] == 0.25 and headline["comm_x"] == 10.0 and headline["comm_verdict"] == "non-inferior"
    assert "97.5% CI" in page  # 4 looks: each bound at 0.05 / 4
    assert "Headline: the largest reductions non-inferior at 0.25 pp" in page


def test_the_files_are_attached_to_each_study_run(store, report):
    _, folder = store
    attached = sorted(p.name for p in folder.glob("mlruns/*/*/artifacts/report/*"))
    assert attached.count("index.html") == 2 and attached.count("headline.csv") == 2
    assert attached.count("findings.md") == 2
    assert sum(name.endswith("-pareto.png") for name in attached) == 2


@pytest.mark.parametrize("name, message", [
    ("nope", "error: experiment 'nope' not found at sqlite:///.*; existing: Default, broken, quick\n"),
    ("broken", "error: experiment 'broken' at sqlite:///.* has no finished runs \\(2 runs in all\\)\n"),
])
def test_nothing_to_report_is_one_line_and_exit_code_2(store, tmp_path, monkeypatch, capsys, name, message):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])
    assert cli.main(["--experiment", name, "--out", str(tmp_path / "out")]) == 2
    assert re.fullmatch(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_a_missing_store_is_reported_and_not_created(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path}/none.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert cli.main(["--experiment", "quick", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: no MLflow store at {uri}; run a sweep first or set MLFLOW_TRACKING_URI\n"
    assert list(tmp_path.iterdir()) == []
