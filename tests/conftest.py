"""Shared fixtures: where the real data lives, and a clean working folder for CLI runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# CI and developers keep CIFAR-10 in ../shared/data beside the clone; SPLITBENCH_DATA overrides.
DATA_DIR = Path(os.environ.get("SPLITBENCH_DATA") or ROOT.parent / "shared" / "data")
# A `bench run` that takes seconds: synthetic data, a narrow small CNN.
SMALL = ["--model", "smallcnn", "--width", "0.5", "--dataset", "synthetic", "--train-subset", "300",
         "--test-subset", "100", "--epochs", "3", "--batch-size", "64", "--quiet"]


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    if not any(DATA_DIR.glob("cifar*")):
        pytest.skip(f"CIFAR-10 not found in {DATA_DIR}")
    return DATA_DIR


def run_cli(args, cwd, env=None, timeout=600):
    """`python -m bench ARGS` in `cwd` with the project on the path; returns the CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SPLITBENCH_DATA")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
