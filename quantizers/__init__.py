"""Codecs for what crosses the cut: the Codec contract, the Payload and the QUANTIZERS registry.

Contract (one codec instance per direction, and per client when the codec keeps state):
    encode(x: Tensor) -> Payload        # the tensors that cross the wire, scales included
    decode(p: Payload, like: Tensor) -> Tensor   # same shape/dtype/device as `like`
Payload.nbytes is measured from the payload's tensors; a codec cannot declare it.
A codec is stateless unless it says otherwise (`stateful = True`, e.g. error feedback); the
engine then gives every client its own instance.

A codec's arguments are the init fields of its dataclass, with defaults, validated in
__post_init__ (a bad value raises UsageError starting with the argument's name); its
`search_space` gives sweeps their ranges, as for policies. A codec that is not a dataclass takes
no arguments. `make_codec(name, args)` is the one place codecs are built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

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


QUANTIZERS: Registry[type] = Registry("codec", "splitbench.quantizers")


def arguments(cls: type) -> list[dataclasses.Field]:
    """The codec class's arguments: its dataclass init fields (none for other classes)."""
    return [f for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []


def make_codec(name: str, args: tuple[tuple[str, Any], ...] = ()) -> Codec:
    """A fresh instance of the codec registered as `name`, built with its typed `args` (name, value)."""
    return QUANTIZERS.get(name)(**dict(args))

from quantizers import casts, integer, mx, nvfp4, scaled  # noqa: E402,F401  (register the built-in codecs)
