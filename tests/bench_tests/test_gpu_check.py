"""`make gpu-check` without CUDA: the smoke version runs from the source tree without MLflow or Optuna."""

import subprocess
import sys

import torch

from bench import device_bench
from quantizers import QUANTIZERS
from tests.conftest import ROOT

# Importing MLflow or Optuna fails in this process, as on a machine with only PyTorch.
WITHOUT_TRACKING = ("import sys; sys.modules['mlflow'] = sys.modules['optuna'] = None; "
                    "from bench.gpu_check import main; raise SystemExit(main(['--smoke']))")


def test_smoke_mode_prints_the_rows_and_an_accuracy(tmp_path):
    # One thread: two OpenMP threads on a shared 2-core machine run this several times slower.
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", WITHOUT_TRACKING], cwd=tmp_path, capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "no CUDA" in out and "smoke version on the CPU" in out
    assert "vgg11 split/plain time per image" in out and "resnet18 split/plain time per image" in out
    assert "fp8_e4m3 on device" in out and "GB/s" in out
    assert "epoch   1" in out and "final test accuracy" in out and out.rstrip().endswith(")")


def test_without_cuda_the_device_rows_of_make_bench_say_they_need_it():
    got = device_bench.rows(torch.device("cpu"), ds=None)
    assert [r[0] for r in got[:3]] == ["host syncs per training step", "vgg11 split/plain time per image",
                                       "resnet18 split/plain time per image"]
    assert len(got) == 3 + len(QUANTIZERS.names())
    assert {r[1] for r in got} == {"needs CUDA"}
