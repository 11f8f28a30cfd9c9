"""Stages that go around any codec instance: error feedback, then a lossless entropy stage on top.

Error feedback sits next to the lossy codec (its residual is what that codec lost); the entropy
stage, being lossless, goes outside, so the residual is computed without a round trip through zstd.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.errors import UsageError
from quantizers.codec import Codec
from quantizers.entropy import EntropyCoded
from quantizers.feedback import ErrorFeedback

ENTROPY = ("none", "zstd")


@dataclass(frozen=True)
class Stages:
    """The arguments every codec takes besides its own (`--quant-up-arg error_feedback=true`)."""

    error_feedback: bool = False
    entropy: str = "none"
    search_space: ClassVar[dict] = {"error_feedback": {"choices": [False, True]}, "entropy": {"choices": list(ENTROPY)}}

    def __post_init__(self):
        if not isinstance(self.error_feedback, bool):
            raise UsageError(f"error_feedback: must be true or false, got {self.error_feedback!r}")
        if self.entropy not in ENTROPY:
            raise UsageError(f"entropy: must be one of {', '.join(ENTROPY)}, got {self.entropy!r}")


STAGE_NAMES = frozenset(f.name for f in dataclasses.fields(Stages))


def split_stages(args) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the codec's own arguments, its stage arguments) from (name, value) pairs or a dict."""
    args = dict(args)
    return ({k: v for k, v in args.items() if k not in STAGE_NAMES},
            {k: v for k, v in args.items() if k in STAGE_NAMES})


def wrap(codec: Codec, *, error_feedback: bool = False, entropy: str = "none") -> Codec:
    """`codec`, with error feedback if asked, inside a zstd stage if `entropy` is "zstd"."""
    stages = Stages(error_feedback, entropy)
    if stages.error_feedback:
        codec = ErrorFeedback(codec)
    if stages.entropy == "zstd":
        codec = EntropyCoded(codec)
    return codec
