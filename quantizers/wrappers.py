"""Stages that go around any codec instance: error feedback, then a lossless entropy stage on top.

Error feedback sits next to the lossy codec (its residual is what that codec lost); the entropy
stage, being lossless, goes outside, so the residual is computed without a round trip through zstd.
"""

from __future__ import annotations

from bench.errors import UsageError
from quantizers import Codec
from quantizers.entropy import EntropyCoded
from quantizers.feedback import ErrorFeedback

ENTROPY = ("none", "zstd")


def wrap(codec: Codec, *, error_feedback: bool = False, entropy: str = "none") -> Codec:
    """`codec`, with error feedback if asked, inside a zstd stage if `entropy` is "zstd"."""
    if not isinstance(error_feedback, bool):
        raise UsageError(f"error_feedback: must be true or false, got {error_feedback!r}")
    if entropy not in ENTROPY:
        raise UsageError(f"entropy: must be one of {', '.join(ENTROPY)}, got {entropy!r}")
    if error_feedback:
        codec = ErrorFeedback(codec)
    if entropy == "zstd":
        codec = EntropyCoded(codec)
    return codec
