"""Per-tensor scaled FP8: one float32 scale maps max|x| onto the format's largest finite value."""

from __future__ import annotations

import torch

from quantizers import QUANTIZERS, Payload
from quantizers.casts import Cast


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
        scale = x.abs().max() / torch.finfo(self.dtype).max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # no host sync, unlike `if`
        return Payload({"q": (x / scale).to(self.dtype), "scale": scale}, meta=("scale",))

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        x = p.tensors["q"].float() * p.tensors["scale"]
        return x.to(like.device, like.dtype).reshape(like.shape)


@QUANTIZERS.register("fp8_e4m3")
class FP8E4M3(ScaledFP8):
    dtype = torch.float8_e4m3fn
    tolerance = 2.0**-4


@QUANTIZERS.register("fp8_e5m2")
class FP8E5M2(ScaledFP8):
    dtype = torch.float8_e5m2
    tolerance = 2.0**-3
