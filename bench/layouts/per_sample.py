"""The per-sample layout, chosen by RunConfig.refresh_threshold: the server caches decoded
activations per sample, indexed by position in the client's training shard, and a FORWARD epoch
resends only the samples that moved. In the spirit of AQ-SGD (Wang et al., NeurIPS 2022) and
SplitCom.

Protocol, per batch of a FORWARD epoch: the client computes the activations a of the batch, sends
the map of which samples follow (1 bit per sample, counted as up bytes), then a[sent] and their
labels through the up codec as one message; the server trains on the batch as it now holds it. A
sample is sent when the server holds none for it, or when ||a - h|| > threshold x ||h|| (relative
L2 distance) where h is the copy the server holds. threshold 0 resends every sample that moved at
all. FULL epochs send every sample (the client's backward needs each one's gradient) and so
refresh every copy. A CACHED epoch reads the held samples in a fresh order, in batches of
batch_size. Positions in the shard are not payload: the batch order is drawn from a seeded
generator that both ends could hold. The frames carry them (and the map) as bookkeeping all the
same, counted only in the wire bytes (bench/wire/frames.py, AUX).

Memory: to compare, the client keeps what the server holds (it decodes what it sent, as the server
does): one decoded activation per training sample, samples x activation elements x 4 bytes
(float32), as much again as the server's cache.

Augmentation: each sample keeps one view between FULL epochs. Its crop and flip are drawn at the
start of each FULL epoch (from the client's generator) and reused by the FORWARD epochs after it,
so a measured change is a change of the client network, not of the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from bench import data as datasets
from bench.augment import Crops, draw_crops
from bench.config import RunConfig
from bench.layouts.layout import LAYOUTS
from bench.layouts.replay import Regularisers, Replay
from bench.wire.frames import Frame, FrameError
from bench.wire.link import ClientEnd, ServerEnd
from policies import Mode
from quantizers import Payload


class Rows:
    """Rows indexed by position in a client's shard: allocated at the first store (with the shape,
    dtype and device of the rows stored), at least `size` of them, grown with zeros to the largest
    position stored."""

    def __init__(self, size: int = 0):
        self.size = size
        self.data: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.data is None else len(self.data)

    def store(self, positions: torch.Tensor, rows: torch.Tensor) -> None:
        size = max(self.size, int(positions.max()) + 1)
        if size > len(self):
            grown = torch.zeros((size, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
            if self.data is not None:
                grown[:len(self.data)] = self.data
            self.data = grown
        self.data[positions.to(rows.device)] = rows

    def __getitem__(self, positions: torch.Tensor) -> torch.Tensor:
        return self.data[positions.to(self.data.device)]


class SampleCache:
    """The server half: one client's decoded activations and labels per sample. It grows to the
    largest position stored (the server learns the shard's size from what arrives)."""

    def __init__(self, end: ServerEnd, regularisers: Regularisers, device: torch.device):
        self.end, self.regularisers, self.device = end, regularisers, device
        self.acts, self.labels, self.held = Rows(), Rows(), Rows()

    def clear(self) -> None:
        """Nothing to drop: a refresh overwrites the samples it sends and keeps the others."""

    def full(self, frame: Frame, acts: torch.Tensor, labels: torch.Tensor) -> None:
        self._store(_aux(frame, "positions"), acts.detach(), labels)

    def forward(self, frame: Frame) -> Replay:
        positions = _aux(frame, "positions")
        if frame.payload is not None:  # only the samples that moved crossed
            self._store(positions[_aux(frame, "sent")], *self.end.receive(frame, self.device))
        return Replay(self.acts[positions], self.labels[positions])

    def view(self, frame: Frame) -> None:
        raise FrameError("STORE frame: a per-sample cache keeps one view")

    def cached(self, frame: Frame) -> Replay:
        positions = _aux(frame, "positions")
        if not len(self.held) or int(positions.max()) >= len(self.held) or not bool(self.held[positions].all()):
            raise FrameError(f"client {frame.client} asked for samples the server does not hold")
        return self.regularisers.apply(self.acts[positions], self.labels[positions])

    def _store(self, positions: torch.Tensor, acts: torch.Tensor, labels: torch.Tensor) -> None:
        self.acts.store(positions, acts)
        self.labels.store(positions, labels)
        self.held.store(positions.cpu(), torch.ones(len(positions), dtype=torch.bool))


def _aux(frame: Frame, name: str) -> torch.Tensor:
    if name not in frame.aux:
        raise FrameError(f"{frame.kind.name} frame without its {name!r} tensor")
    return frame.aux[name]


class SampleRecord:
    """The client's record of the server's SampleCache: per sample of the shard, whether the server
    holds it and the activation it holds (decoded as the server decoded it); the rule that picks
    what to resend."""

    def __init__(self, threshold: float, samples: int, batch_size: int):
        self.threshold, self.batch_size = threshold, batch_size
        self.acts = Rows(samples)
        self.held = torch.zeros(samples, dtype=torch.bool)

    def __bool__(self) -> bool:
        return bool(self.held.any())

    def select(self, positions: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """Boolean mask over the batch: the samples whose activations must be sent."""
        fresh = ~self.held[positions.cpu()].to(acts.device)
        if not len(self.acts):
            return fresh
        old = self.acts[positions].flatten(1)
        moved = (acts.flatten(1) - old).norm(dim=1) > self.threshold * old.norm(dim=1)
        return fresh | moved

    def remember(self, positions: torch.Tensor, acts: torch.Tensor) -> None:
        """What the server now holds for `positions`."""
        self.acts.store(positions, acts)
        self.held[positions.cpu()] = True

    def order(self, generator: torch.Generator) -> list[torch.Tensor]:
        """The next CACHED epoch: the held positions in an order drawn from `generator`, in batches."""
        held = self.held.nonzero().squeeze(1)
        return list(held[torch.randperm(len(held), generator=generator)].split(self.batch_size))


@dataclass(frozen=True)
class SampleBatch:
    """One batch: images, labels, and the samples' positions in the client's shard."""

    x: torch.Tensor
    y: torch.Tensor
    positions: torch.Tensor


@dataclass(frozen=True)
class Samples:
    """An epoch's batches with their positions."""

    epoch: object
    positions: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.epoch)

    def __iter__(self):
        yield from (SampleBatch(x, y, p) for (x, y), p in zip(self.epoch, self.positions))


class SampleClient:
    """The client half: a FULL epoch sends every sample, a FORWARD epoch those that moved."""

    def __init__(self, cfg: RunConfig, samples: int):
        self.batch_size = cfg.batch_size
        self.record = SampleRecord(cfg.refresh_threshold, samples, cfg.batch_size)
        self.crops: Crops | None = None  # each sample's view until the next FULL epoch
        self.sent = 0  # batches sent since the refresh began (the next one's number)

    def __bool__(self) -> bool:
        return bool(self.record)

    def epoch(self, ds, shard, mode, augment, generator, device) -> Samples:
        """A shuffled epoch in which each sample shows the view fixed at the last FULL epoch."""
        self.sent = 0
        if augment and (mode == Mode.FULL or self.crops is None):
            self.crops = draw_crops([len(shard)], generator)
        order = torch.randperm(len(shard), generator=generator)
        crops = self.crops.take(order) if augment else None
        epoch = datasets.batches(ds, "train", shard[order], self.batch_size, device=device, crops=crops)
        return Samples(epoch, list(order.split(self.batch_size)))

    def order(self, generator: torch.Generator) -> list[torch.Tensor]:
        return self.record.order(generator)

    def full(self, link: ClientEnd, batch: SampleBatch, acts, lr):
        grad, loss, payload = link.full_step(acts, batch.y, lr, self.sent, batch.positions)
        self._remember(link, batch.positions, payload, acts.detach())
        self.sent += 1
        return grad, loss

    def forward(self, link: ClientEnd, batch: SampleBatch, acts, lr):
        sent = self.record.select(batch.positions, acts)
        loss, payload = link.refresh_step(acts, batch.y, lr, self.sent, batch.positions, sent)
        if payload is not None:
            self._remember(link, batch.positions[sent.cpu()], payload, acts[sent])
        self.sent += 1
        return loss, len(batch.y)

    def cached(self, link: ClientEnd, positions: torch.Tensor, lr):
        return link.cached_step(lr, positions=positions), len(positions)

    def _remember(self, link: ClientEnd, positions, payload: Payload, acts: torch.Tensor) -> None:
        """What the server now holds for `positions`: what crossed, decoded as the server decodes it."""
        self.record.remember(positions, link.up.decode(payload, acts))


@LAYOUTS.register("per-sample")
class PerSample:
    """Decoded activations per sample, refreshed where they moved (see the module's docstring)."""

    server = SampleCache
    client = SampleClient
    chosen_by: ClassVar[tuple] = (("refresh_threshold", 0.05),)
