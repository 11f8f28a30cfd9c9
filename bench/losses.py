"""An epoch's training losses, kept on the device until checked, so that steps never wait on the host.

    losses = StepLosses(clients=2, epoch=0)
    losses.add(step, client, loss, n)   # loss: the batch's mean loss, a 0-dim tensor; n: samples
    losses.check()                      # one read-back; RunFailed names the first non-finite step
    losses.totals()                     # per client: (sum of loss x samples, samples)

The totals are summed on the host in step order from each float32 loss widened to a Python float,
the same arithmetic as reading every loss back as it is computed, so they are identical to it.
"""

from __future__ import annotations

import math

import torch

from bench.errors import RunFailed


class StepLosses:
    def __init__(self, clients: int, epoch: int):
        self.epoch = epoch
        self.sums = [[0.0, 0] for _ in range(clients)]
        self.pending: list[tuple[int, int, torch.Tensor, int]] = []  # (step, client, loss, samples)

    def add(self, step: int, client: int, loss: torch.Tensor, samples: int) -> None:
        self.pending.append((step, client, loss.detach(), samples))

    def check(self) -> None:
        """Read back every loss added since the last check; RunFailed at the first that is not finite."""
        if not self.pending:
            return
        values = torch.stack([loss for _, _, loss, _ in self.pending]).tolist()
        for (step, client, _, samples), value in zip(self.pending, values):
            if not math.isfinite(value):
                raise RunFailed(f"train/loss is {value} at epoch {self.epoch}, step {step} (client {client}): "
                                "the run diverged")
            self.sums[client][0] += value * samples
            self.sums[client][1] += samples
        self.pending = []

    def totals(self) -> list[tuple[float, int]]:
        """Each client's (sum of loss x samples, samples) over the checked steps."""
        return [tuple(s) for s in self.sums]
