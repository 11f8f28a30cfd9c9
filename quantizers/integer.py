"""int8 and int4: symmetric integers with one float32 scale per tensor or per channel.

scale = max|x| / qmax over the tensor (`granularity = "tensor"`) or over each index of dim 1
(`"channel"`: the channels of an NCHW activation, the features of an (N, F) one; a 1-D tensor has
one channel), and 1 where that maximum is 0; q = x / scale rounded, clamped to [-qmax, qmax]
(qmax = 127 for int8, 7 for int4). int4 values cross two per byte, low nibble first, two's
complement. The scales are meta. A NaN or inf decodes its whole tensor or channel to NaN.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch

from quantizers import QUANTIZERS, Payload, elements
from quantizers.rounding import Rounding, check_choice

GRANULARITIES = ("tensor", "channel")


@dataclass
class Integer(Rounding):
    granularity: str = "tensor"

    stateful: ClassVar[bool] = False
    family: ClassVar[str] = "int"
    bits: ClassVar[int]
    tolerance: ClassVar[float]
    search_space: ClassVar[dict] = {"granularity": {"choices": list(GRANULARITIES)}}

    def __post_init__(self):
        super().__post_init__()
        check_choice("granularity", self.granularity, GRANULARITIES)

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def encode(self, x: torch.Tensor) -> Payload:
        x = x.detach().float()
        amax = self._channels(x).abs().amax(dim=1)
        scale = torch.where(amax == 0, 1.0, amax / self.qmax)  # NaN stays NaN
        q = x / self._broadcast(scale, x)
        # Only a NaN, an inf or a scale that underflowed to 0 makes q non-finite. The check costs less
        # than the pass on the CPU; elsewhere it would wait for the device.
        if x.device.type != "cpu" or not (amax.isfinite() & (scale > 0)).all():
            q.nan_to_num_(0.0, 0.0, 0.0)
        q = elements.round_integers(q, self.generator(x.device))
        q = q.clamp_(-self.qmax, self.qmax).to(torch.int8).reshape(-1)
        if self.bits == 4:
            q = torch.nn.functional.pad(q, (0, 1)) if q.numel() % 2 else q
            q = elements.pack(q.view(torch.uint8) & 0x0F, 4)
        return Payload({"q": q, "scale": scale if self.granularity == "channel" else scale[0]}, meta=("scale",))

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        q = p.tensors["q"]
        if self.bits == 4:
            x = elements.decode_pairs(q, _nibble_pairs(q.device), 4)[: like.numel()].view(like.shape)
        else:
            x = q.float().view(like.shape)
        x *= self._broadcast(p.tensors["scale"].reshape(-1), x)
        return x.to(like.device, like.dtype)

    def _channels(self, x: torch.Tensor) -> torch.Tensor:
        """x as (groups, values): one row per channel, or a single row."""
        if self.granularity == "channel" and x.dim() >= 2:
            return x.transpose(0, 1).reshape(x.shape[1], -1)
        return x.reshape(1, -1)

    def _broadcast(self, scale: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.granularity == "channel" and x.dim() >= 2:
            return scale.view(1, -1, *[1] * (x.dim() - 2))
        return scale.view(*[1] * x.dim()) if x.dim() else scale.reshape(())


@functools.lru_cache(maxsize=None)
def _nibble_pairs(device: torch.device) -> torch.Tensor:
    """The pair table of int4 codes: two's complement nibbles."""
    return elements.pair_table((torch.arange(16) ^ 8).float() - 8, 4).to(device)


@QUANTIZERS.register("int8")
@dataclass
class Int8(Integer):
    bits = 8
    tolerance = 2.0**-7  # half a step: 1 / 254 of max|x|


@QUANTIZERS.register("int4")
@dataclass
class Int4(Integer):
    bits = 4
    tolerance = 2.0**-3  # half a step: 1 / 14 of max|x|
