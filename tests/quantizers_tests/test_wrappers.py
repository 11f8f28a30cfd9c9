"""Wrapped codecs (error feedback, the zstd stage, both) pass the conformance kit over every codec."""

import pytest

from bench.errors import UsageError
from quantizers import QUANTIZERS
from quantizers.entropy import EntropyCoded
from quantizers.feedback import ErrorFeedback
from quantizers.testing import CHECKS, DEFAULT_TOLERANCE
from quantizers.wrappers import wrap

STAGES = {"ef": {"error_feedback": True}, "zstd": {"entropy": "zstd"}, "ef+zstd": {"error_feedback": True, "entropy": "zstd"}}


def wrapped(name: str, stages: str) -> type:
    """A no-argument class for the kit: a fresh instance is a fresh wrapped codec, so a first
    message has no residual and round-trips within the inner codec's tolerance."""
    inner = QUANTIZERS.get(name)
    return type(f"{stages}({name})", (), {
        "tolerance": getattr(inner, "tolerance", DEFAULT_TOLERANCE),
        "gradient_scale_exempt": getattr(inner, "gradient_scale_exempt", False),
        "__new__": lambda cls: wrap(inner(), **STAGES[stages]),
    })


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("stages", STAGES)
@pytest.mark.parametrize("name", QUANTIZERS.names())
def test_wrapped_codec_conforms(name, stages, check):
    check(wrapped(name, stages))


def test_wrap_puts_error_feedback_inside_the_entropy_stage():
    codec = wrap(QUANTIZERS.get("fp8_e4m3")(), error_feedback=True, entropy="zstd")
    assert isinstance(codec, EntropyCoded) and isinstance(codec.inner, ErrorFeedback)
    assert codec.stateful and not wrap(QUANTIZERS.get("fp8_e4m3")(), entropy="zstd").stateful


@pytest.mark.parametrize("args, field", [({"entropy": "gzip"}, "entropy"), ({"error_feedback": "yes"}, "error_feedback")])
def test_bad_stage_arguments_name_themselves(args, field):
    with pytest.raises(UsageError, match=f"^{field}: "):
        wrap(QUANTIZERS.get("fp32")(), **args)
