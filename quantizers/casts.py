"""Plain casts: fp32, fp16, bf16 and the unscaled FP8 ablations.

`tolerance` bounds the round-trip error as a fraction of max|x| (the conformance kit checks it):
half an ulp at the top of the format's precision, 2**-(mantissa bits + 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from quantizers import QUANTIZERS, Payload, elements
from quantizers.lookup import float_values
from quantizers.rounding import Rounding


@dataclass
class Cast(Rounding):
    """Encode: `x` cast to `dtype`, as Payload {"q"}. Decode: `q` cast back to `like`'s dtype,
    device and shape. Nearest rounding is torch's cast (ties to even; out-of-range values follow
    torch); stochastic rounding rounds onto the format's grid first, then casts exactly."""

    stateful: ClassVar[bool] = False
    family: ClassVar[str] = "cast"  # the unscaled FP8 ablations too: a cast is what they are
    gradient_scale_exempt: ClassVar[bool] = False
    fmt: ClassVar[elements.FloatFormat]
    dtype: ClassVar[torch.dtype]  # both follow from `fmt`
    tolerance: ClassVar[float]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "fmt" in cls.__dict__:
            cls.dtype = elements.DTYPES[cls.fmt]
            cls.tolerance = 2.0 ** -(cls.fmt.mbits + 1)

    def encode(self, x: torch.Tensor) -> Payload:
        x = x.detach()
        generator = self.generator(x.device)
        if generator is not None:
            x = elements.round_values(x.float(), self.fmt, generator)
        return Payload({"q": x.to(self.dtype)})

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        return float_values(p.tensors["q"]).to(like.device, like.dtype).reshape(like.shape)


@QUANTIZERS.register("fp32")
@dataclass
class FP32:
    """The reference: values cross as they are (no arguments)."""

    stateful: ClassVar[bool] = False
    family: ClassVar[str] = "cast"
    search_space: ClassVar[dict] = {}
    tolerance: ClassVar[float] = 0.0

    def encode(self, x: torch.Tensor) -> Payload:
        return Payload({"q": x.detach().float()})

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        return p.tensors["q"].to(like.device, like.dtype).reshape(like.shape)


@QUANTIZERS.register("fp16")
@dataclass
class FP16(Cast):
    """Plain FP16: cut-layer gradients (~1e-6) land among its subnormals; `fp16_scaled` avoids that."""

    gradient_scale_exempt = True  # its point: small values lost
    fmt = elements.FP16


@QUANTIZERS.register("bf16")
@dataclass
class BF16(Cast):
    fmt = elements.BF16


@QUANTIZERS.register("fp8_e4m3_unscaled")
@dataclass
class FP8E4M3Unscaled(Cast):
    """Ablation: FP8 E4M3 without a scale (saturates at +-448, inf included)."""

    gradient_scale_exempt = True  # its point: small values lost
    fmt = elements.E4M3


@QUANTIZERS.register("fp8_e5m2_unscaled")
@dataclass
class FP8E5M2Unscaled(Cast):
    """Ablation: FP8 E5M2 without a scale (overflows to inf beyond 57344)."""

    gradient_scale_exempt = True  # its point: small values lost
    fmt = elements.E5M2
