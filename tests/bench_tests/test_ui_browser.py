"""The UIs in a real browser: the MLflow runs page shows each run's data sets, and the Optuna
dashboard (`bench dashboard`, `make dashboard`) shows a study's trials. Headless Chromium, as in
tests/reports_tests/test_browser.py."""

import os
import subprocess
import sys
import time

import pytest
import requests

from tests.bench_tests.conftest import free_port
from tests.conftest import ROOT, SMALL, cli
from tests.reports_tests.test_browser import CHROMIUM, chromium

pytestmark = pytest.mark.slow
NO_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")


def started(args, cwd) -> subprocess.Popen:
    """`python ARGS` in `cwd`, with this project and the default stores of `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("OPTUNA_STORAGE", None)
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def page(url: str, ready: str, proc: subprocess.Popen, profile) -> str:
    """The DOM of `url` in headless Chromium once `ready` answers; stops `proc` (the server) after."""
    try:
        wait_for(ready, proc)
        return chromium("--virtual-time-budget=20000", "--dump-dom", url, profile=profile).stdout
    finally:
        proc.terminate()
        proc.wait(30)


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if requests.get(url, timeout=5).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {seconds} s")


@NO_CHROMIUM
def test_the_mlflow_runs_page_shows_each_runs_data_sets(tmp_path):
    assert cli(["run", *SMALL, "--epochs", "1", "--no-system-metrics"], tmp_path).returncode == 0
    port = free_port()
    ui = started(["-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                  "--host", "127.0.0.1", "--port", str(port)], tmp_path)
    shown = ("synthetic-train", "synthetic-test")  # the Dataset column
    dom = page(f"http://127.0.0.1:{port}/#/experiments/1/runs", f"http://127.0.0.1:{port}/health", ui,
               tmp_path / "profile")
    assert all(text in dom for text in shown), [text for text in shown if text not in dom]


@NO_CHROMIUM
def test_the_optuna_dashboard_shows_a_studys_trials(tmp_path):
    import optuna
    from optuna.distributions import CategoricalDistribution

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="noniid/smallcnn-c5-dir0.1",
                                directions=["maximize", "minimize"])
    policies = CategoricalDistribution(["always", "loss_threshold"])
    for policy, acc, nbytes in (("loss_threshold", 0.52, 9.8e9), ("always", 0.55, 1.2e9)):
        # the params are given, not sampled: a sampled policy could be `always` in both trials
        study.add_trial(optuna.trial.create_trial(params={"policy": policy}, distributions={"policy": policies},
                                                  values=[acc, nbytes]))
    dash = started(["-m", "bench", "dashboard", "--port", "0"], tmp_path)  # the default storage, optuna.db here
    line = dash.stdout.readline()
    if not line.startswith("dashboard: http://127.0.0.1:"):
        dash.kill()
        raise AssertionError(line + dash.stderr.read())
    url = line.split()[1]
    shown = ("noniid/smallcnn-c5-dir0.1", "Trial 0", "Trial 1", "loss_threshold")
    dom = page(f"{url}/studies/1/trials", f"{url}/api/studies", dash, tmp_path / "profile")
    assert all(text in dom for text in shown), [text for text in shown if text not in dom]
