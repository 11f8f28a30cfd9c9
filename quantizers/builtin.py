"""Built-in codecs: plain casts (fp32, fp16, bf16, unscaled FP8) and per-tensor scaled FP8.

Every codec here is stateless and takes no constructor arguments. `tolerance` bounds the
round-trip error as a fraction of max|x| (the conformance kit checks it): half an ulp at the
top of the format's precision, 2**-(mantissa bits + 1).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from quantizers import QUANTIZERS, Payload
from quantizers.lookup import scaled_values


class Cast:
    """Encode: `x` cast to `dtype`, as Payload {"q"}. Decode: `q` cast back to `like`'s dtype,
    device and shape. Rounding is to nearest even; out-of-range values follow torch's cast."""

    stateful: ClassVar[bool] = False
    dtype: ClassVar[torch.dtype]
    tolerance: ClassVar[float]

    def encode(self, x: torch.Tensor) -> Payload:
        return Payload({"q": x.detach().to(self.dtype)})

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        return p.tensors["q"].to(like.device, like.dtype).reshape(like.shape)


class ScaledFP8(Cast):
    """Encode: scale = max|x| / max_finite(dtype) (float32, 0-dim; 1 when x is all zeros),
    q = x / scale cast to `dtype`, as Payload {"q", "scale"} (the scale's 4 bytes are counted).
    Decode: q * scale, cast to `like`'s dtype, device and shape. A NaN or inf anywhere in x
    makes the whole decoded tensor NaN (max|x| is then not finite)."""

    # Scaling maps max|x| onto the format's largest finite value. Cut-layer gradients are about
    # 1e-6, below the smallest FP8 subnormal, so an unscaled cast flushes them all to zero and the
    # client silently stops learning (PAPER.md, "FP8").
    def encode(self, x: torch.Tensor) -> Payload:
        x = x.detach().float()
        low, high = torch.aminmax(x)  # one pass, no |x| temporary; NaN propagates as with abs().max()
        scale = torch.maximum(high, -low) / torch.finfo(self.dtype).max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # no host sync, unlike `if`
        return Payload({"q": (x / scale).to(self.dtype), "scale": scale}, meta=("scale",))

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        x = scaled_values(p.tensors["q"], p.tensors["scale"])
        return x.to(like.device, like.dtype).reshape(like.shape)


@QUANTIZERS.register("fp32")
class FP32(Cast):
    dtype = torch.float32
    tolerance = 0.0


@QUANTIZERS.register("fp16")
class FP16(Cast):
    dtype = torch.float16
    tolerance = 2.0**-11


@QUANTIZERS.register("bf16")
class BF16(Cast):
    dtype = torch.bfloat16
    tolerance = 2.0**-8


@QUANTIZERS.register("fp8_e4m3")
class FP8E4M3(ScaledFP8):
    dtype = torch.float8_e4m3fn
    tolerance = 2.0**-4


@QUANTIZERS.register("fp8_e5m2")
class FP8E5M2(ScaledFP8):
    dtype = torch.float8_e5m2
    tolerance = 2.0**-3


@QUANTIZERS.register("fp8_e4m3_unscaled")
class FP8E4M3Unscaled(Cast):
    """Ablation: FP8 E4M3 without a scale (saturates at +-448, inf included)."""

    dtype = torch.float8_e4m3fn
    tolerance = 2.0**-4


@QUANTIZERS.register("fp8_e5m2_unscaled")
class FP8E5M2Unscaled(Cast):
    """Ablation: FP8 E5M2 without a scale (overflows to inf beyond 57344)."""

    dtype = torch.float8_e5m2
    tolerance = 2.0**-3
