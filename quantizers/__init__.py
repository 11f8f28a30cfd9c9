"""Codecs for what crosses the cut: the Codec contract, the Payload and the QUANTIZERS registry
(quantizers/codec.py), and `make_codec`. The built-in codecs register when QUANTIZERS is first
asked for a name.

Contract (one codec instance per direction, and per client when the codec keeps state):
    encode(x: Tensor) -> Payload        # the tensors that cross the wire, scales included
    decode(p: Payload, like: Tensor) -> Tensor   # same shape/dtype/device as `like`
Payload.nbytes is measured from the payload's tensors; a codec cannot declare it.
A codec names its family (`family: ClassVar[str]`: "cast", "fp8", "mx" for block-scaled formats,
"int", "sparse", or a family of its own), which the report draws with one marker and reads from
here alone. A codec is stateless unless it says otherwise (`stateful = True`, e.g. error feedback); the
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
from typing import Any

from quantizers.codec import QUANTIZERS, Codec, Payload, arguments, reset
from quantizers.wrappers import Stages, split_stages, wrap

__all__ = ["QUANTIZERS", "Codec", "Payload", "arguments", "codec_params", "make_codec", "reset"]


def make_codec(name: str, args: tuple[tuple[str, Any], ...] = ()) -> Codec:
    """A fresh instance of the codec registered as `name`, built with its typed `args` (name, value):
    its own arguments go to its class, the stage arguments to quantizers.wrappers.wrap."""
    own, stages = split_stages(args)
    return wrap(QUANTIZERS.get(name)(**own), **stages)


def codec_params(name: str, args: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """Every argument of codec `name` with its resolved value (defaults included), own then stages."""
    own, stages = split_stages(args)
    codec = QUANTIZERS.get(name)(**own)
    return {f.name: getattr(codec, f.name) for f in arguments(type(codec))} | dataclasses.asdict(Stages(**stages))
