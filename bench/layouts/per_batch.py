"""The per-batch layout, the default (PAPER.md's cache): the server caches each batch as it received
it (the payload still encoded, its labels), in one or more views.

A FORWARD epoch with cache_views = K sends K views, each one full pass over the shard with its own
augmentation and order: view 0 in FORWARD frames, which the server trains on, the others in STORE
frames, cached only. The c-th CACHED epoch after the refresh reads view c mod K, its batches in a
fresh order the client draws; a CACHED frame names its batch by number (its index: batches are
numbered in the order they were sent, across views).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from bench import data as datasets
from bench.config import RunConfig
from bench.layouts.layout import LAYOUTS
from bench.layouts.replay import Regularisers, Replay
from bench.wire.frames import Frame, FrameError
from bench.wire.link import ClientEnd, ServerEnd
from policies import Mode
from quantizers import Payload


@dataclass(frozen=True)
class Received:
    """One batch as the server received it: the payload (not re-encoded), labels, and the shape to decode to."""

    payload: Payload
    labels: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype


class BatchCache:
    """The server half: one client's batches as received, in views."""

    def __init__(self, end: ServerEnd, regularisers: Regularisers, device: torch.device):
        self.end, self.regularisers, self.device = end, regularisers, device
        self.views: list[list[Received]] = []

    def clear(self) -> None:
        self.views = []

    def store(self, received: Received, view: int = 0) -> None:
        while len(self.views) <= view:
            self.views.append([])
        self.views[view].append(received)

    def batches(self) -> list[Received]:
        """Every cached batch, view after view, in the order they were stored."""
        return [b for view in self.views for b in view]

    def replay(self, item: Received) -> Replay:
        acts = self.end.decode(item.payload, item.shape, item.dtype, item.labels.device)
        return self.regularisers.apply(acts, item.labels)

    def full(self, frame: Frame, acts: torch.Tensor, labels: torch.Tensor) -> None:
        self.store(_received(frame, labels))

    def forward(self, frame: Frame) -> Replay:
        acts, labels = self.end.receive(frame, self.device)
        self.store(_received(frame, labels))
        return Replay(acts, labels)

    def view(self, frame: Frame) -> None:
        if not self.views:
            raise FrameError("STORE frame without a view 0 in a per-batch cache")
        _, labels = self.end.receive(frame, self.device)
        self.store(_received(frame, labels), frame.index)

    def cached(self, frame: Frame) -> Replay:
        held = self.batches()
        if not 0 <= frame.index < len(held):
            raise FrameError(f"client {frame.client} has {len(held)} cached batches, asked for batch {frame.index}")
        return self.replay(held[frame.index])


def _received(frame: Frame, labels: torch.Tensor) -> Received:
    return Received(frame.payload, labels, torch.Size(frame.shape), frame.dtype)


class BatchRecord:
    """The client's record of the server's BatchCache: per cached batch its number and samples, in views."""

    def __init__(self):
        self.views: list[list[tuple[int, int]]] = []
        self.replays = 0  # CACHED epochs drawn since the last refresh

    def clear(self) -> None:
        self.views, self.replays = [], 0

    def store(self, batch: tuple[int, int], view: int) -> None:
        while len(self.views) <= view:
            self.views.append([])
        self.views[view].append(batch)

    def __bool__(self) -> bool:
        return bool(self.views)

    def order(self, generator: torch.Generator) -> list[tuple[int, int]]:
        """The batches of the next CACHED epoch: view (c mod K), in an order drawn from `generator`."""
        self.replays += 1
        view = self.views[self.replays % len(self.views)]
        return [view[i] for i in torch.randperm(len(view), generator=generator).tolist()]


@dataclass(frozen=True)
class ViewBatch:
    """One batch of a view: images, labels, and which view (0 is trained on, the others are stored)."""

    x: torch.Tensor
    y: torch.Tensor
    view: int = 0


@dataclass(frozen=True)
class Views:
    """The batches of an epoch's views, view after view."""

    epochs: list

    def __len__(self) -> int:
        return sum(len(e) for e in self.epochs)

    def __iter__(self):
        for view, epoch in enumerate(self.epochs):
            yield from (ViewBatch(x, y, view) for x, y in epoch)


class BatchClient:
    """The client half: every batch crosses whole, numbered in the order it was sent."""

    def __init__(self, cfg: RunConfig, samples: int):
        self.batch_size, self.views = cfg.batch_size, cfg.cache_views
        self.record = BatchRecord()
        self.sent = 0  # batches cached since the refresh began (the next one's number)

    def __bool__(self) -> bool:
        return bool(self.record)

    def epoch(self, ds, shard, mode, augment, generator, device) -> Views:
        self.record.clear()
        self.sent = 0
        views = self.views if mode == Mode.FORWARD else 1
        return Views([datasets.batches(ds, "train", shard, self.batch_size, augment=augment, shuffle=True,
                                       generator=generator, device=device) for _ in range(views)])

    def order(self, generator: torch.Generator) -> list[tuple[int, int]]:
        return self.record.order(generator)

    def full(self, link: ClientEnd, batch: ViewBatch, acts, lr):
        grad, loss, _ = link.full_step(acts, batch.y, lr, self.sent)
        self._sent(batch)
        return grad, loss

    def forward(self, link: ClientEnd, batch: ViewBatch, acts, lr):
        if batch.view:  # further views are stored for CACHED epochs, not trained on now
            link.store_view(acts, batch.y, batch.view)
            self._sent(batch)
            return acts.new_zeros(()), 0
        loss, _ = link.forward_step(acts, batch.y, lr, self.sent)
        self._sent(batch)
        return loss, len(batch.y)

    def cached(self, link: ClientEnd, item: tuple[int, int], lr):
        number, samples = item
        return link.cached_step(lr, index=number), samples

    def _sent(self, batch: ViewBatch) -> None:
        self.record.store((self.sent, len(batch.y)), batch.view)
        self.sent += 1


@LAYOUTS.register("per-batch")
class PerBatch:
    """Each batch as received, in views (see the module's docstring); the default."""

    server = BatchCache
    client = BatchClient
    chosen_by: ClassVar[tuple] = ()
