"""The server's cache of one client: what FULL and FORWARD epochs store, how CACHED epochs read it.

Two layouts, one interface (`store`, `clear`, `order`, `replay`):
    BatchCache   per batch, as received (the payload still encoded, its labels), in one or more
                 views. A FORWARD epoch with cache_views = K stores K views, each one full pass
                 over the shard with its own augmentation and order; the server trains on view 0
                 in that epoch, and the c-th CACHED epoch after the refresh reads view c mod K,
                 its batches in a fresh order.
    SampleCache  per sample, decoded, indexed by position in the client's training shard (the
                 layout of per-sample refresh, RunConfig.refresh_threshold). A CACHED epoch reads
                 the held samples in a fresh order, in batches of batch_size.
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

from quantizers import Payload


@dataclass(frozen=True)
class Received:
    """One batch as the server received it: the payload (not re-encoded), labels, and the shape to decode to."""

    payload: Payload
    labels: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype


@dataclass(frozen=True)
class Replay:
    """One batch a CACHED epoch trains on: activations, labels, and with mixup the partner labels."""

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


class BatchCache:
    """Per-batch cache in views; the default layout (one view, no regularisers: PAPER.md's cache)."""

    def __init__(self, codec, regularisers: Regularisers):
        self.codec = codec
        self.regularisers = regularisers
        self.views: list[list[Received]] = []
        self.replays = 0  # CACHED epochs read since the last refresh

    def clear(self) -> None:
        self.views, self.replays = [], 0

    def store(self, received: Received, view: int = 0) -> None:
        while len(self.views) <= view:
            self.views.append([])
        self.views[view].append(received)

    def __bool__(self) -> bool:
        return bool(self.views)

    def batches(self) -> list[Received]:
        """Every cached batch, view after view, in the order they were stored."""
        return [b for view in self.views for b in view]

    def order(self, generator: torch.Generator) -> list[Received]:
        """The batches of the next CACHED epoch: view (c mod K), in an order drawn from `generator`."""
        self.replays += 1
        view = self.views[self.replays % len(self.views)]
        return [view[i] for i in torch.randperm(len(view), generator=generator).tolist()]

    def replay(self, item: Received) -> Replay:
        like = torch.empty(item.shape, dtype=item.dtype, device=item.labels.device)
        return self.regularisers.apply(self.codec.decode(item.payload, like), item.labels)


class SampleCache:
    """Per-sample cache of decoded activations, indexed by position in the client's training shard.
    It grows to the largest position stored (the server learns the shard's size from what arrives)."""

    def __init__(self, samples: int, batch_size: int, regularisers: Regularisers):
        self.samples, self.batch_size = samples, batch_size
        self.regularisers = regularisers
        self.acts: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.held = torch.zeros(samples, dtype=torch.bool)

    def clear(self) -> None:
        """Nothing to drop: a refresh overwrites the samples it sends and keeps the others."""

    def store(self, positions: torch.Tensor, acts: torch.Tensor, labels: torch.Tensor) -> None:
        size = max(self.samples, int(positions.max()) + 1)
        if self.acts is None or size > self.samples:
            self._grow(size, acts, labels)
        self.acts[positions.to(acts.device)] = acts
        self.labels[positions.to(labels.device)] = labels
        self.held[positions.cpu()] = True

    def _grow(self, size: int, acts: torch.Tensor, labels: torch.Tensor) -> None:
        old = (self.acts, self.labels, self.held)
        self.acts = torch.zeros((size, *acts.shape[1:]), dtype=acts.dtype, device=acts.device)
        self.labels = torch.zeros(size, dtype=labels.dtype, device=labels.device)
        self.held = torch.zeros(size, dtype=torch.bool)
        self.held[:len(old[2])] = old[2]
        if old[0] is not None:
            self.acts[:len(old[0])], self.labels[:len(old[1])] = old[0], old[1]
        self.samples = size

    def read(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The held activations and labels of `positions` (every one must be held)."""
        return self.acts[positions.to(self.acts.device)], self.labels[positions.to(self.labels.device)]

    def __bool__(self) -> bool:
        return bool(self.held.any())

    def order(self, generator: torch.Generator) -> list[torch.Tensor]:
        """The next CACHED epoch: the held positions in an order drawn from `generator`, in batches."""
        held = self.held.nonzero().squeeze(1)
        return list(held[torch.randperm(len(held), generator=generator)].split(self.batch_size))

    def replay(self, positions: torch.Tensor) -> Replay:
        return self.regularisers.apply(*self.read(positions))
