"""Every registered codec, built-in or plugin, passes every check of the conformance kit; the kit
itself catches broken codecs."""

import pytest
import torch

from quantizers import QUANTIZERS, Payload
from quantizers.testing import CHECKS, check_codec


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", QUANTIZERS.names())
def test_codec_conforms(name, check):
    check(QUANTIZERS.get(name))  # default arguments


class Half:
    """A third-party codec that declares no tolerance."""

    def encode(self, x):
        return Payload({"x": x.detach().half()})

    def decode(self, p, like):
        return p.tensors["x"].to(like.dtype)


class Float64(Half):
    def decode(self, p, like):
        return p.tensors["x"].double()


class Zeros(Half):
    def decode(self, p, like):
        return torch.zeros_like(like)


class InPlace(Half):
    def encode(self, x):
        return super().encode(x.detach().clamp_(-0.5, 0.5))


class Attached(Half):
    def encode(self, x):
        return Payload({"x": x.half()})


class PythonScale(Half):
    def encode(self, x):
        return Payload({"x": x.detach().half(), "scale": 1.0})


def test_kit_passes_a_codec_without_declared_tolerance():
    check_codec(Half)


@pytest.mark.parametrize("broken", [Float64, Zeros, InPlace, Attached, PythonScale], ids=lambda c: c.__name__)
def test_kit_catches_a_broken_codec(broken):
    with pytest.raises(AssertionError, match=broken.__name__):
        check_codec(broken)


class AbsoluteGrid(Half):
    """Rounds to multiples of 2**-10: fine at max|x| = 1, everything lost at gradient scale."""

    tolerance = 2.0**-10

    def encode(self, x):
        return Payload({"x": (x.detach().float() * 1024).round()})

    def decode(self, p, like):
        return (p.tensors["x"] / 1024).to(like.dtype)


def test_kit_checks_gradient_sized_inputs():
    with pytest.raises(AssertionError, match="AbsoluteGrid .* with max\\|x\\| = 1e-06: round-trip error"):
        check_codec(AbsoluteGrid)
    AbsoluteGrid.gradient_scale_exempt = True
    try:
        check_codec(AbsoluteGrid)
    finally:
        del AbsoluteGrid.gradient_scale_exempt
