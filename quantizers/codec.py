"""The Codec contract, the Payload and the QUANTIZERS registry (re-exported by the package,
quantizers/__init__.py, which says what the contract asks)."""

from __future__ import annotations

import dataclasses
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
    family: ClassVar[str]

    def encode(self, x: torch.Tensor) -> Payload: ...

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor: ...


def reset(codec: Codec) -> None:
    """Clear the state `codec` keeps between messages; a no-op for a codec without `reset()`."""
    hook = getattr(codec, "reset", None)
    if hook is not None:
        hook()


QUANTIZERS: Registry[type] = Registry("codec", "splitbench.quantizers", built_ins=(
    "quantizers.casts", "quantizers.integer", "quantizers.mx", "quantizers.nvfp4", "quantizers.scaled", "quantizers.topk"))


def arguments(cls: type) -> list[dataclasses.Field]:
    """The class's own arguments: its dataclass init fields (none for other classes)."""
    return [f for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []
