"""The contract of a cache layout, and the LAYOUTS registry.

A layout says how the server caches what FULL and FORWARD epochs send, and how a CACHED epoch
reads it back. It has two halves that meet only in Frames, over the run's transport:
    server half  what the server holds of one client; built per client by
                 `layout.server(end, regularisers, device)` (end: the client's ServerEnd, which
                 decodes what arrives). Each training frame's handler calls the method of its
                 kind (`full`, `forward`, `view`, `cached`); `clear` when a sending epoch starts.
    client half  what crosses in a FULL or FORWARD epoch (`epoch`, `full`, `forward`) and the
                 client's record of what the server holds, from which it draws a CACHED epoch's
                 order (`order`) and names each cached batch (`cached`); built per client by
                 `layout.client(cfg, samples)` (samples: the client's training shard size).
Every random draw of a CACHED epoch's order comes from the client's generator, so the order does
not depend on where the server runs. A layout is a class registered in LAYOUTS
(`@LAYOUTS.register("name")`) with the attributes `server` and `client` (the halves' classes) and
`chosen_by`, config fields that choose it: a run's layout is derived from its config in one place,
bench.layouts.layout_of, and the conformance kit (bench/layouts/testing.py) runs each layout with
the fields it names.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterable, Protocol, Sized

import torch

from bench.config import RunConfig
from bench.layouts.replay import Regularisers, Replay
from bench.registry import Registry
from bench.wire.frames import Frame
from bench.wire.link import ClientEnd, ServerEnd
from policies import Mode


class Fresh(Protocol):
    """One batch a client computes in a FULL or FORWARD epoch (a layout's batches may say more)."""

    x: torch.Tensor
    y: torch.Tensor


class FreshEpoch(Sized, Iterable[Fresh], Protocol):
    """A client's batches of one FULL or FORWARD epoch, in the order they cross."""


class ServerHalf(Protocol):
    """What the server holds of one client, and how each training frame refreshes or reads it."""

    def clear(self) -> None:
        """The client starts an epoch that sends (its batch 0 arrived)."""

    def full(self, frame: Frame, acts: torch.Tensor, labels: torch.Tensor) -> None:
        """Cache what a FULL frame brought (`acts`, `labels`: decoded by the server)."""

    def forward(self, frame: Frame) -> Replay:
        """Refresh the cache from a FORWARD frame; the batch the server trains on now."""

    def view(self, frame: Frame) -> None:
        """Cache a STORE frame's further view; FrameError where the layout keeps none."""

    def cached(self, frame: Frame) -> Replay:
        """The cached batch a CACHED frame names, regularised; FrameError if it is not held."""


class ClientHalf(Protocol):
    """What a client sends, and its record of what the server holds of it."""

    def __bool__(self) -> bool:
        """Whether the server holds anything of this client (a CACHED epoch needs something)."""

    def epoch(self, ds, shard: torch.Tensor, mode: Mode, augment: bool, generator: torch.Generator,
              device: torch.device) -> FreshEpoch:
        """The batches of a FULL or FORWARD epoch (every draw taken now, from `generator`); what
        the server held is about to be refreshed."""

    def order(self, generator: torch.Generator) -> list:
        """The next CACHED epoch's items, in an order drawn from `generator`."""

    def full(self, link: ClientEnd, batch: Fresh, acts: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """A FULL step of `batch` with activations `acts`: (the gradient w.r.t. `acts`, the loss)."""

    def forward(self, link: ClientEnd, batch: Fresh, acts: torch.Tensor, lr: float) -> tuple[torch.Tensor, int]:
        """A FORWARD step: (the loss, the samples the server trained on)."""

    def cached(self, link: ClientEnd, item: Any, lr: float) -> tuple[torch.Tensor, int]:
        """A CACHED step on one of `order`'s items: (the loss, the samples the server trained on)."""


class Layout(Protocol):
    """A cache layout: a class registered in LAYOUTS whose attributes build its two halves, and the
    config fields that choose it."""

    server: ClassVar[Callable[[ServerEnd, Regularisers, torch.device], ServerHalf]]
    client: ClassVar[Callable[[RunConfig, int], ClientHalf]]
    chosen_by: ClassVar[tuple[tuple[str, Any], ...]]


LAYOUTS: Registry[type[Layout]] = Registry("layout", "splitbench.layouts",
                                           built_ins=("bench.layouts.per_batch", "bench.layouts.per_sample"))
