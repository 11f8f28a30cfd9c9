"""Codecs for what crosses the cut: the Codec contract, the Payload and the QUANTIZERS registry.

Contract (one codec instance per direction, and per client when the codec keeps state):
    encode(x: Tensor) -> Payload        # the tensors that cross the wire, scales included
    decode(p: Payload, like: Tensor) -> Tensor   # same shape/dtype/device as `like`
Payload.nbytes is measured from the payload's tensors; a codec cannot declare it.
A codec is stateless unless it says otherwise (`stateful = True`, e.g. error feedback); the
engine then gives every client its own instance. A stateful codec may define `reset()`, which
clears its state; `reset(codec)` calls it where there is one (quantizers/feedback.py says when
the engine does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from bench.registry import Registry


@dataclass(frozen=True)
class Payload:
    """The tensors that cross the wire for one message, by name (e.g. {"q": ..., "scale": ...}).

    `meta` names the tensors that describe the values rather than carry them (scales, indices,
    bitmaps): they cross and count in `nbytes` like the rest, and `meta_nbytes` counts them apart.
    """

    tensors: dict[str, torch.Tensor]
    meta: tuple[str, ...] = ()

    @property
    def nbytes(self) -> int:
        return sum(_size(t) for t in self.tensors.values())

    @property
    def meta_nbytes(self) -> int:
        return sum(_size(self.tensors[name]) for name in self.meta)


def _size(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class Codec(Protocol):
    stateful: ClassVar[bool]

    def encode(self, x: torch.Tensor) -> Payload: ...

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor: ...


def reset(codec: Codec) -> None:
    """Clear the state `codec` keeps between messages; a no-op for a codec without `reset()`."""
    hook = getattr(codec, "reset", None)
    if hook is not None:
        hook()


QUANTIZERS: Registry[type] = Registry("codec", "splitbench.quantizers")

from quantizers import builtin, topk  # noqa: E402,F401  (registers the built-in codecs)
