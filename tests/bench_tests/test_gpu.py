"""CUDA path (run with `pytest -m gpu` on a machine with a GPU; deselected by default)."""

import pytest
import torch

from bench import names
from bench.config import RunConfig
from bench.device_bench import syncs_per_step
from bench.engine import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("codec", ["fp32", "fp8_e4m3"])
def test_one_vgg11_epoch_on_cuda_matches_the_cpu_byte_counts(codec):
    cfg = dict(model="vgg11", cut=4, dataset="synthetic", train_subset=1000, test_subset=200, epochs=1,
               quant_up=codec, quant_down=codec.replace("e4m3", "e5m2"))
    gpu = train(RunConfig(**cfg, device="cuda"), progress=False)
    cpu = train(RunConfig(**cfg, device="cpu"), progress=False)
    for key in (names.comm("up"), names.comm("down"), names.comm("label"), names.CLIENT_FLOPS):
        assert gpu.epochs[0][key] == cpu.epochs[0][key]
    assert gpu.epochs[0][names.TEST_ACC] > 0.2


def test_training_steps_never_wait_on_the_host():
    assert syncs_per_step(torch.device("cuda")) < 0.5  # one per step would be 1
