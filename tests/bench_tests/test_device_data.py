"""Device-resident epochs: the same numbers as before, and divergence still found and named.

The reference values below are exact floats recorded from the engine as it was before batches were
made on the data's device and losses were read back once per epoch (each step's loss read with
.item() and the batches built on the CPU). Equality, not closeness: moving the data path and
deferring the loss check must not change a single bit on the CPU. They were recorded with torch
2.14 on x86-64 with 2 threads (the test pins that count: it decides how convolutions sum);
another CPU kernel library may round convolutions differently.
"""

import math

import pytest
import torch

from bench.config import RunConfig
from bench.engine import train
from bench.errors import RunFailed
from bench.losses import StepLosses

BASE = dict(model="smallcnn", width=0.25, cut=2, dataset="synthetic", train_subset=256, test_subset=100,
            batch_size=64, device="cpu", policy="periodic")


@pytest.mark.parametrize("overrides, expected", [
    # One client: FULL, FORWARD, CACHED, augmented throughout.
    (dict(epochs=3, policy_args={"period": 3}),
     [(2.457612156867981, 0.16, 0.0), (2.3221651315689087, 0.1, 1.0), (2.4064769744873047, 0.1, 2.0)]),
    # Two interleaved clients with FedAvg, FP8 both ways, FORWARD without augmentation.
    (dict(epochs=2, clients=2, quant_up="fp8_e4m3", quant_down="fp8_e5m2", policy_args={"period": 2},
          cache_augment="off"),
     [(2.4647288133227634, 0.14, 0.0), (2.3285165514264787, 0.1, 1.0)]),
])
def test_cpu_metrics_are_bit_identical_to_the_per_step_engine(overrides, expected):
    torch.set_num_threads(2)  # restored after the test (tests/conftest.py)
    cfg = RunConfig(**(BASE | overrides))
    run = train(cfg, progress=False)
    assert [(e["train/loss"], e["test/acc"], e["mode"]) for e in run.epochs] == expected


def test_divergence_names_the_same_first_step_however_often_losses_are_checked():
    cfg = RunConfig(**(BASE | dict(epochs=1, train_subset=192, lr=1e12, warmup_epochs=0, policy="always")))
    with pytest.raises(RunFailed) as per_epoch:
        train(cfg, progress=False)
    with pytest.raises(RunFailed) as per_step:
        train(cfg, progress=False, check_every=1)
    assert str(per_epoch.value) == str(per_step.value)
    assert str(per_step.value) == ("train/loss is nan at epoch 0, step 2 (client 0): the run diverged")


def test_step_losses_sum_in_step_order_and_report_the_first_non_finite():
    losses = StepLosses(clients=2, epoch=4)
    for step, (client, value, n) in enumerate([(0, 0.5, 10), (1, 2.0, 3), (0, 0.25, 4)]):
        losses.add(step, client, torch.tensor(value), n)
    losses.check()
    assert losses.totals() == [(0.5 * 10 + 0.25 * 4, 14), (6.0, 3)]
    losses.add(3, 0, torch.tensor(1.0), 1)
    losses.add(4, 1, torch.tensor(math.inf), 1)
    losses.add(5, 0, torch.tensor(math.nan), 1)
    with pytest.raises(RunFailed, match=r"^train/loss is inf at epoch 4, step 4 \(client 1\): the run diverged$"):
        losses.check()
