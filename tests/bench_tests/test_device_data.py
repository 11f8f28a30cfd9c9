"""Device-resident epochs: the same numbers as reading every loss back per step, and divergence
still found and named.

The engine keeps each step's loss on the device and reads them back once per epoch (StepLosses).
The per-step way (each loss read with .item() as it is computed, summed in step order) is computed
here in the same process, from the same steps, and must agree to the bit; so must a run that checks
every step. Comparing with floats recorded on another machine would test torch's CPU kernels
instead: they round convolutions differently on each CPU capability (ATEN_CPU_CAPABILITY).
"""

import math

import pytest
import torch

from bench import names
from bench.config import RunConfig
from bench.engine import train
from bench.errors import RunFailed
from bench.losses import StepLosses

BASE = dict(model="smallcnn", width=0.25, cut=2, dataset="synthetic", train_subset=256, test_subset=100,
            batch_size=64, device="cpu", policy="periodic")
CASES = [
    # One client: FULL, FORWARD, CACHED, augmented throughout.
    (dict(epochs=3, policy_args={"period": 3}),
     [(2.45761, 0.16, 0.0), (2.32217, 0.1, 1.0), (2.40648, 0.1, 2.0)]),
    # Two interleaved clients with FedAvg, FP8 both ways, FORWARD without augmentation.
    (dict(epochs=2, clients=2, quant_up="fp8_e4m3", quant_down="fp8_e5m2", policy_args={"period": 2},
          cache_augment="off"),
     [(2.46473, 0.14, 0.0), (2.32852, 0.1, 1.0)]),
]


class PerStep(StepLosses):
    """StepLosses that also reads every loss back as it is added (.item()), summing per client in step
    order: the arithmetic of an engine that synchronises on each step."""

    read: list[list[tuple[float, int]]] = []

    def __init__(self, clients: int, epoch: int):
        super().__init__(clients, epoch)
        self.per_step = [[0.0, 0] for _ in range(clients)]
        PerStep.read.append(self.per_step)

    def add(self, step, client, loss, samples):
        super().add(step, client, loss, samples)
        self.per_step[client][0] += loss.item() * samples
        self.per_step[client][1] += samples


@pytest.mark.parametrize("overrides, recorded", CASES)
def test_cpu_metrics_are_bit_identical_to_reading_every_loss_back_per_step(monkeypatch, overrides, recorded):
    """Catches: a loss summed in another order or precision once losses stay on the device, or a
    check every N steps that changes what is computed."""
    cfg = RunConfig(**(BASE | overrides))
    PerStep.read = []
    monkeypatch.setattr("bench.engine.StepLosses", PerStep)
    run = train(cfg, progress=False)
    per_step = [sum(t for t, _ in epoch) / sum(n for _, n in epoch) for epoch in PerStep.read]
    assert [e[names.TRAIN_LOSS] for e in run.epochs] == per_step
    checked_each_step = train(cfg, progress=False, check_every=1)
    metrics = [(e[names.TRAIN_LOSS], e[names.TEST_ACC], e["mode"]) for e in run.epochs]
    assert [(e[names.TRAIN_LOSS], e[names.TEST_ACC], e["mode"]) for e in checked_each_step.epochs] == metrics
    # Recorded with torch 2.14 on the reference machine (an Intel Xeon, 2 threads), to the 6 digits
    # the tolerance below leaves meaningful. Other CPU kernels
    # move the losses in the sixth to eighth digit (FP8 rounding carries a last-bit difference
    # further) and could flip a test sample, so: losses to 1e-4, accuracy to 2 of 100 samples.
    assert [e["mode"] for e in run.epochs] == [mode for _, _, mode in recorded]
    assert [e[names.TRAIN_LOSS] for e in run.epochs] == pytest.approx([loss for loss, _, _ in recorded], rel=1e-4)
    assert [e[names.TEST_ACC] for e in run.epochs] == pytest.approx([acc for _, acc, _ in recorded], abs=0.02)



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
