"""What a CACHED epoch trains on, whatever the layout: the cached batch as a Replay, after the
cache's regularisers.

Regularisers, applied to what a CACHED epoch reads and free in bytes (nothing crosses):
    mixup   alpha > 0: each batch is mixed with a permutation of itself, activations and labels,
            with lambda ~ Beta(alpha, alpha) (Zhang et al., ICLR 2018).
    noise   sigma > 0: Gaussian noise of standard deviation sigma x each channel's standard
            deviation over the batch (the channel is dim 1).
Every random draw comes from the cache's own generators, seeded by the run, so a run is
reproducible and turning a regulariser on does not move the client's shuffles.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.config import RunConfig
from bench.split import client_stream


@dataclass(frozen=True)
class Replay:
    """One batch the server trains on: activations, labels, and with mixup the partner labels."""

    acts: torch.Tensor
    labels: torch.Tensor
    partner_labels: torch.Tensor | None = None
    lam: float = 1.0

    def loss(self, logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        loss = F.cross_entropy(logits, self.labels, label_smoothing=label_smoothing)
        if self.partner_labels is None:
            return loss
        return self.lam * loss + (1 - self.lam) * F.cross_entropy(logits, self.partner_labels,
                                                                   label_smoothing=label_smoothing)


class Regularisers:
    """Mixup and channel-relative noise on cached activations (both off at 0)."""

    def __init__(self, mixup: float, noise: float, seed: int):
        self.mixup, self.noise = mixup, noise
        self.generator = torch.Generator().manual_seed(seed)
        self.beta = random.Random(seed)

    @classmethod
    def of(cls, cfg: RunConfig, client: int) -> "Regularisers":
        """Client `client`'s regularisers in run `cfg`."""
        # A stream of their own, so turning them on moves no client shuffle.
        return cls(cfg.cache_mixup, cfg.cache_noise, seed=client_stream(cfg, client) + 500_000)

    def apply(self, acts: torch.Tensor, labels: torch.Tensor) -> Replay:
        if self.noise:
            dims = [d for d in range(acts.dim()) if d != 1]
            spread = acts.std(dim=dims, correction=0, keepdim=True)
            draw = torch.randn(acts.shape, generator=self.generator).to(acts.device, acts.dtype)
            acts = acts + self.noise * spread * draw
        if not self.mixup:
            return Replay(acts, labels)
        lam = self.beta.betavariate(self.mixup, self.mixup)
        perm = torch.randperm(len(labels), generator=self.generator).to(labels.device)
        return Replay(lam * acts + (1 - lam) * acts[perm], labels, labels[perm], lam)
