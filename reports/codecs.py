"""Codec families and short codec labels, so that a legend stays readable with many codecs.

A figure marks each family (or up/down pair of families) with one marker instead of giving every
up/down pair of codecs its own: a sweep over 5 codecs each way has 25 pairs but 4 family pairs.
"""

from __future__ import annotations

# (name prefix, family), first match wins: mxint8 is a block-scaled format, not a plain integer one.
PREFIXES = (("mx", "mx"), ("nvfp4", "mx"), ("fp8", "fp8"), ("int", "int"), ("topk", "sparse"),
            ("fp32", "cast"), ("fp16", "cast"), ("bf16", "cast"))


def codec_family(name: str) -> str:
    """"cast", "fp8", "mx" (block-scaled: MX formats, nvfp4), "int", "sparse"; else the name itself."""
    return next((family for prefix, family in PREFIXES if name.startswith(prefix)), name)


def family_label(codec: str) -> str:
    """The families of an "up/down" codec pair, once when both directions share it: "fp8", "cast/fp8"."""
    return short_label("/".join(codec_family(name) for name in codec.split("/")))


def short_label(codec: str) -> str:
    """An "up/down" pair, written once when both directions use the same: "fp16/fp16" -> "fp16"."""
    up, _, down = codec.partition("/")
    return up if up == down else codec
