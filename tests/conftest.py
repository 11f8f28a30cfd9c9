"""Shared fixtures: where the real data lives, and `python -m bench` run in-process or as a process."""

import contextlib
import io
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
# Variables a developer's shell may set that would send a test's records elsewhere.
OUTSIDE = ("MLFLOW_TRACKING_URI", "SPLITBENCH_DATA", "OPTUNA_STORAGE")


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs one worker per core) each worker computes on one thread:
    N workers of the default N threads each would oversubscribe the cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def torch_threads():
    """Each test starts with torch's thread count as the session found it: an in-process sweep worker
    sets it to 1, and the thread count decides how convolutions sum, so it must not leak."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    if not any(DATA_DIR.glob("cifar*")):
        pytest.skip(f"CIFAR-10 not found in {DATA_DIR}")
    return DATA_DIR


def run_cli(args, cwd, env=None, timeout=600):
    """`python -m bench ARGS` as a process in `cwd` with the project on the path; returns the CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k not in OUTSIDE}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def cli(args, cwd, env=None) -> subprocess.CompletedProcess:
    """`python -m bench ARGS` run in this process (bench.cli.main), as run_cli would run it in `cwd`.

    Saves importing torch and MLflow again for every command. The MLflow store is the default
    `mlflow.db` of `cwd`, named by its absolute path (MLflow caches stores by URI). Installed entry
    points are looked up afresh (sys.path may have changed), and the names plugins register are
    forgotten afterwards with their modules, so tests cannot leak plugins into each other.
    """
    from bench import cli as bench_cli
    from bench.layouts import LAYOUTS
    from bench.wire.transport import TRANSPORTS
    from policies import POLICIES
    from quantizers import QUANTIZERS

    cwd = Path(cwd).resolve()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"} | (env or {})
    saved_env = {k: os.environ.get(k) for k in (*OUTSIDE, *env)}
    registries = (POLICIES, QUANTIZERS, LAYOUTS, TRANSPORTS)
    for registry in registries:
        registry.names()  # the built-ins register now, not as names the command's plugins added
    saved_entries = {r: dict(r._entries) for r in registries}
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        for k in OUTSIDE:
            os.environ.pop(k, None)
        os.environ.update(env)
        os.chdir(cwd)
        for registry in registries:
            registry._installed = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = bench_cli.main([str(a) for a in args])
            except SystemExit as exc:  # argparse: --help, or a flag it rejects
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(saved_cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for registry, entries in saved_entries.items():
            added = set(registry._entries) - set(entries)
            for name in added:
                sys.modules.pop(getattr(registry._entries[name].obj, "__module__", ""), None)
            registry._entries = entries
            registry._installed = None
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
