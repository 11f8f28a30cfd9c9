"""The report of a real tiny sweep read back from MLflow: files, page, artifacts, bad input."""

import re

import pandas as pd
import pytest

from reports import cli


def test_the_report_has_every_figure_table_and_caption(report):
    page = (report / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 11  # 5 figures x 2 cells, and the 2-client cell's partition
    assert sum(png.endswith("-gates.png") for png in images) == 2
    assert [png for png in images if png.endswith("-partition.png")] == ["smallcnn-w0-25-c2-clients2-partition.png"]
    for png in images:
        assert (report / png).stat().st_size > 10_000 and (report / png).with_suffix(".svg").exists()
    assert 'id="headline-table"' in page and "1.64x-106.7x" in page
    assert page.count("Made from sweep <code>quick</code>") == 1 + 11 + 2  # headline, figures, settings tables
    assert "synthetic data (paper: CIFAR-10)" in page and "1 unfinished or failed run is not shown" in page
    assert "2 trials repeating an earlier trial's setting are counted once" in page
    headline = pd.read_csv(report / "headline.csv")
    assert headline["baseline_seeds"].tolist() == [2, 2]
    assert (headline["comm_x"] >= 1).all()
    for name in ("comm", "total", "flops"):
        assert {f"{name}_delta_pp", f"{name}_delta_ci_low", f"{name}_delta_ci_high", f"{name}_verdict"} <= set(headline)
    # Seed runs and the repeats are not trials: 3 settings a cell, each once.
    trials = pd.read_csv(report / "trials.csv")
    assert len(trials) == 6 and set(trials["clients"]) == {1, 2}
    assert trials["seeds"].tolist() == [2, 2, 1] * 2
    settings = pd.read_csv(report / "settings.csv")
    one = settings[settings["policy"] == "loss_threshold"]
    assert one["setting"].tolist() == ["loss_threshold(max_cached=0, reference=last_full, signal=train, threshold=0.3)"] * 2
    assert (one["verdict"] == "noise unknown").all() and one["delta_ci_low"].isna().all()
    two = settings[settings["policy"] == "periodic"]
    assert (two["acc_ci_low"] <= two["acc"]).all() and (two["delta_ci_low"] <= two["delta_ci_high"]).all()
    assert "noise unknown" in page and "within the noise" in page
    table = (report / "findings.md").read_text().splitlines()
    assert sum(line.startswith("### ") for line in table) == 2
    assert sum(line.startswith("| ") for line in table) == 2 * (2 + 3)  # per cell: header, rule, 3 settings


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
