"""Codec families and short codec labels, so that a legend stays readable with many codecs.

A figure marks each family (or up/down pair of families) with one marker instead of giving every
up/down pair of codecs its own: a sweep over 5 codecs each way has 25 pairs but 4 family pairs.
A codec's family is what its class declares (`family`, quantizers/__init__.py), read here and
nowhere else; a codec the report cannot find, or one that declares none, is a UsageError naming it.
"""

from __future__ import annotations

from bench.config import registry
from bench.errors import UsageError


def codec_family(name: str) -> str:
    """The family codec `name` declares: "cast", "fp8", "mx" (block-scaled: MX formats, nvfp4), "int",
    "sparse", or a plugin's own."""
    cls = component("codec", name, "codec family")
    family = getattr(cls, "family", None)
    if not isinstance(family, str) or not family:
        raise UsageError(f"codec {name!r} ({cls.__name__}) declares no family, so the report cannot mark it; "
                         'give its class one, e.g. family: ClassVar[str] = "int"')
    return family


def component(kind: str, name: str, what: str) -> type:
    """The class registered as `name` in the registry of `kind` ("policy", "codec"), or a UsageError
    saying that the report cannot tell `what` without it (a plugin it was not given, say)."""
    try:
        return registry(kind).get(name)
    except UsageError as exc:
        raise UsageError(f"{kind} {name!r}: the report knows no {what} for it ({exc}); a plugin's component "
                         "needs its plugin: --plugin FILE_OR_MODULE") from None


def family_label(codec: str) -> str:
    """The families of an "up/down" codec pair, once when both directions share it: "fp8", "cast/fp8"
    (a codec's arguments, "topk(k=0.05)", do not change its family)."""
    return short_label("/".join(codec_family(name.partition("(")[0]) for name in codec.split("/")))


def short_label(codec: str) -> str:
    """An "up/down" pair, written once when both directions use the same: "fp16/fp16" -> "fp16"."""
    up, _, down = codec.partition("/")
    return up if up == down else codec
