"""A real tiny sweep in a temporary MLflow store, trained once per pytest run, and its report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reports_tests import make_experiment

# Fewer trials than the script's default: each one is a real training run.
TRIALS = (
    ("always", (), "fp32", "fp32", (0, 1)),
    ("periodic", (("period", 3),), "fp8_e4m3", "fp8_e5m2", (0, 1)),
    ("loss_threshold", (("threshold", 0.30001234),), "fp16", "fp16", (0,)),  # shown as threshold=0.3
)


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> tuple[str, Path]:
    """(tracking URI, folder) of a store holding experiment "quick" (two cells of 3 trials, two of them
    with 2 seeds, and a repeat of the baseline; one FAILED trial) and experiment "broken" (only a FAILED run)."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    cwd = Path.cwd()
    os.chdir(folder)  # MLflow puts a new experiment's artifacts under the working directory
    try:
        make_experiment.make(uri, "quick", epochs=3, train_subset=256, test_subset=100, trials=TRIALS)
        make_experiment.make(uri, "broken", clients=(1,), epochs=1, train_subset=256, test_subset=50, trials=())
    finally:
        os.chdir(cwd)
    return uri, folder


@pytest.fixture(scope="session")
def report(store) -> Path:
    """The report of "quick", built once through the CLI: the output folder."""
    from reports import cli

    uri, folder = store
    out = folder / "out" / "quick"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        assert cli.main(["--experiment", "quick", "--out", str(out)]) == 0
    return out
