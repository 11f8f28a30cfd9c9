"""Per-tensor scaled casts: one float32 scale per message, counted as meta bytes.

`fp8_e4m3` / `fp8_e5m2` map max|x| onto the format's largest finite value. `fp16_scaled` scales by
a power of two that puts max|x| in [2**14, 2**15): cut-layer gradients (~1e-6) then sit among
FP16's normal numbers instead of its subnormals, and the scaling itself adds no rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from quantizers import Payload, QUANTIZERS, elements
from quantizers.casts import Cast
from quantizers.lookup import scaled_values

# The exponent of fp16_scaled's target binade for max|x|: one binade below FP16's largest (max
# 65504 < 2**16), a factor-of-2 margin, so that no value rounds up to inf.
FP16_TOP = 14


@dataclass
class ScaledFP8(Cast):
    """Encode: scale = max|x| / max_finite(dtype) (float32, 0-dim; 1 when x is all zeros),
    q = x / scale cast to `dtype`, as Payload {"q", "scale"} (the scale's 4 bytes are meta).
    Decode: q * scale, cast to `like`'s dtype, device and shape. A NaN or inf anywhere in x
    makes the whole decoded tensor NaN (max|x| is then not finite)."""

    family = "fp8"
    # Scaling maps max|x| onto the format's largest finite value. Cut-layer gradients are about
    # 1e-6, below the smallest FP8 subnormal, so an unscaled cast flushes them all to zero and the
    # client silently stops learning (PAPER.md, "FP8").
    def encode(self, x: torch.Tensor) -> Payload:
        x = x.detach().float()
        low, high = torch.aminmax(x)  # one pass, no |x| temporary; NaN propagates as with abs().max()
        scale = torch.maximum(high, -low) / self.fmt.max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # no host sync, unlike `if`
        return Payload({"q": self._cast(x / scale), "scale": scale}, meta=("scale",))

    def _cast(self, v: torch.Tensor) -> torch.Tensor:
        generator = self.generator(v.device)
        if generator is not None:  # x / scale may exceed max by an ulp: never round that past it
            v = torch.where(v.isinf(), v, v.clamp(-self.fmt.max, self.fmt.max))
            v = elements.round_values(v, self.fmt, generator)
        return v.to(self.dtype)

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        x = scaled_values(p.tensors["q"], p.tensors["scale"])
        return x.to(like.device, like.dtype).reshape(like.shape)


@QUANTIZERS.register("fp8_e4m3")
@dataclass
class FP8E4M3(ScaledFP8):
    fmt = elements.E4M3


@QUANTIZERS.register("fp8_e5m2")
@dataclass
class FP8E5M2(ScaledFP8):
    fmt = elements.E5M2


@QUANTIZERS.register("fp16_scaled")
@dataclass
class FP16Scaled(ScaledFP8):
    """Encode: scale = 2**(floor(log2 max|x|) - 14), float32, so x / scale is exact and max|x| / scale
    lies in [2**14, 2**15); q = x / scale cast to FP16, as Payload {"q", "scale"} (meta). The scale
    is 1 when max|x| is 0, inf or NaN (those then cross as FP16 carries them), and its exponent
    stays within [-126, 126] (max|x| below 2**-112 loses precision). Decode: q * scale."""

    family = "cast"  # 16 bits a value, as the plain FP16 and BF16 casts
    fmt = elements.FP16

    def encode(self, x: torch.Tensor) -> Payload:
        x = x.detach().float()
        amax = x.abs().max()
        exponent = (elements.floor_log2(amax) - FP16_TOP).clamp(-126, 126)
        exponent = torch.where((amax > 0) & amax.isfinite(), exponent, 0)
        scale = elements.pow2(exponent)
        return Payload({"q": self._cast(elements.ldexp(x, -exponent)), "scale": scale}, meta=("scale",))
