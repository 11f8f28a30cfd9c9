"""Codecs for what crosses the cut: the Codec contract, the Payload and the QUANTIZERS registry.

Contract (one codec instance per direction, and per client when the codec keeps state):
    encode(x: Tensor) -> Payload        # the tensors that cross the wire, scales included
    decode(p: Payload, like: Tensor) -> Tensor   # same shape/dtype/device as `like`
Payload.nbytes is measured from the payload's tensors; a codec cannot declare it.
A codec is stateless unless it says otherwise (`stateful = True`, e.g. error feedback); the
engine then gives every client its own instance. A stateful codec may define `reset()`, which
clears its state; `reset(codec)` calls it where there is one (quantizers/feedback.py says when
the engine does).

A codec's arguments are the init fields of its dataclass, with defaults, validated in
__post_init__ (a bad value raises UsageError starting with the argument's name); its
`search_space` gives sweeps their ranges, as for policies. A codec that is not a dataclass takes
no arguments. Every codec also takes the stage arguments of quantizers/wrappers.py (`error_feedback`,
`entropy`). `make_codec(name, args)` is the one place codecs are built.
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


def reset(codec: Codec) -> None:
    """Clear the state `codec` keeps between messages; a no-op for a codec without `reset()`."""
    hook = getattr(codec, "reset", None)
    if hook is not None:
        hook()


QUANTIZERS: Registry[type] = Registry("codec", "splitbench.quantizers")

def arguments(cls: type) -> list[dataclasses.Field]:
    """The class's own arguments: its dataclass init fields (none for other classes)."""
    return [f for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []


def make_codec(name: str, args: tuple[tuple[str, Any], ...] = ()) -> Codec:
    """A fresh instance of the codec registered as `name`, built with its typed `args` (name, value):
    its own arguments go to its class, the stage arguments to quantizers.wrappers.wrap."""
    from quantizers.wrappers import split_stages, wrap

    own, stages = split_stages(args)
    return wrap(QUANTIZERS.get(name)(**own), **stages)


def codec_params(name: str, args: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """Every argument of codec `name` with its resolved value (defaults included), own then stages."""
    from quantizers.wrappers import Stages, split_stages

    own, stages = split_stages(args)
    codec = QUANTIZERS.get(name)(**own)
    return {f.name: getattr(codec, f.name) for f in arguments(type(codec))} | dataclasses.asdict(Stages(**stages))


from quantizers import casts, integer, mx, nvfp4, scaled, topk  # noqa: E402,F401  (register the built-in codecs)
