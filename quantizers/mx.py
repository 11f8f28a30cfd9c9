"""OCP Microscaling (MX v1.0) codecs: mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, mxint8.

The flattened tensor is cut into blocks of `block` consecutive elements, the last one padded with
zeros. Each block crosses as one E8M0 scale byte X = 2**(code - 127) (code 255 is NaN), counted as
meta bytes, and `block` elements of `bits` bits packed at their true width (quantizers.elements):
ceil(numel / block) * (block * bits / 8 + 1) bytes per message.

Shared exponent (spec section 6.3): X = 2**(floor(log2 max|block|) - emax_elem), emax_elem being
the exponent of the element format's largest normal value; elements are x / X rounded to the
element format, saturating at its largest normal value. `scale_rounding = "up"` instead takes the
smallest X with max|block| / X <= that value, so nothing saturates: X = 2**ceil(log2(max / max_elem)),
the conversion that Mishra, Stosic and Layton found needed to pre-train without divergence
("Recipes for Pre-training LLMs with MXFP8", arXiv:2506.08027; RCEIL in NVIDIA's hardware).
The shared exponent is clamped to E8M0's [-127, 127]: tiny blocks flush towards zero, as in the
spec's reference code (microsoft/microxcaling). An all-zero block has code 0. As in that code, a
block holding a NaN or an inf gets the NaN scale, and the whole block decodes to NaN.

On the CPU, nearest rounding with floor scales encodes through quantizers.compiled (compiled loops,
bit for bit the torch path, which every other case takes).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from bench.errors import UsageError
from quantizers import QUANTIZERS, Payload, compiled, elements
from quantizers.compiled import blocks
from quantizers.rounding import Rounding, check_choice

SCALE_ROUNDINGS = ("floor", "up")
E8M0_BIAS = 127
E8M0_NAN = 255


@functools.lru_cache(maxsize=None)
def e8m0_values(device: torch.device, unit: float = 1.0) -> torch.Tensor:
    """The float32 value of every E8M0 code, 2**(code - 127) (2**-127 a float32 subnormal), NaN for
    255, times `unit`, a power of two (exact: every product stays above 2**-149)."""
    values = elements.ldexp(torch.full((256,), unit), torch.arange(256) - E8M0_BIAS, wide=True)
    values[E8M0_NAN] = torch.nan
    return values.to(device)


@functools.lru_cache(maxsize=None)
def floor_scales(cls: type, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MX.scales with the spec's floor rounding for every float32 exponent field: of 2**(field - 127),
    0 for field 0 and inf for 255, whose scales are those of every amax with that field."""
    return tuple(t.to(device) for t in cls().scales((torch.arange(256, dtype=torch.int32) << 23).view(torch.float32)))


@dataclass
class MX(Rounding):
    """The MX layout and shared scale; subclasses give the element format."""

    block: int = 32
    scale_rounding: str = "floor"

    stateful: ClassVar[bool] = False
    family: ClassVar[str] = "mx"  # block-scaled, MXINT8 included
    bits: ClassVar[int]
    emax: ClassVar[int]  # emax_elem
    max: ClassVar[float]  # the element format's largest normal value
    tolerance: ClassVar[float]
    unit: ClassVar[float] = 1.0  # the value of element code 1 where decode_elements leaves it out
    # Whether decoding on the CPU takes compiled.blocks.decode_blocks: where it measured faster than
    # the torch path (all but E5M2, which decodes as the top byte of FP16, and MXINT8, a cast).
    compiled_decode: ClassVar[bool] = False
    search_space: ClassVar[dict] = {
        "block": {"choices": [16, 32, 64]},
        "scale_rounding": {"choices": list(SCALE_ROUNDINGS)},
    }

    def __post_init__(self):
        super().__post_init__()
        multiple = 8 // math.gcd(self.bits, 8)  # whole bytes per block
        if not isinstance(self.block, int) or isinstance(self.block, bool) or self.block < 1 or self.block % multiple:
            raise UsageError(f"block: must be a positive multiple of {multiple}, got {self.block!r}")
        check_choice("scale_rounding", self.scale_rounding, SCALE_ROUNDINGS)

    def encode(self, x: torch.Tensor) -> Payload:
        flat = x.detach().float().reshape(-1)
        if flat.numel() % self.block:
            flat = torch.nn.functional.pad(flat, (0, -flat.numel() % self.block))
        generator = self.generator(x.device)
        if compiled.active(x, generator) and self.scale_rounding == "floor":
            packed, scale = self.compiled_encode(flat, floor_scales(type(self), x.device))
        else:
            scale, scaled = self.scaled_blocks(flat.view(-1, self.block))
            packed = elements.pack(self.encode_elements(scaled.view(-1), generator), self.bits)
        return Payload({"elements": packed, "scale": scale}, meta=("scale",))

    def compiled_encode(self, flat: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(packed elements, scale codes) by quantizers.compiled, nearest rounding, floor scales."""
        raise NotImplementedError

    def scaled_blocks(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the E8M0 scale codes, x / X) of 2-D `rows`, one block each; a block holding a NaN or
        an inf is all +0 (its scale says NaN)."""
        scaled = rows.abs()
        amax = scaled.amax(dim=1)  # its sign bit is clear, NaN's too
        if self.scale_rounding == "floor":  # the scales follow from amax's exponent field alone
            field = amax.view(torch.int32) >> 23
            scale, inverse = (t.index_select(0, field) for t in floor_scales(type(self), rows.device))
        else:
            scale, inverse = self.scales(amax)
        torch.mul(rows, inverse[:, None], out=scaled)  # |x| is spent: its memory is ready
        elements.zero_rows(scaled, scale != E8M0_NAN)
        return scale, scaled

    def scales(self, amax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the E8M0 scale codes, 1 / X as float32) of blocks whose largest magnitude is `amax`."""
        exponent = self.shared_exponent(amax)
        scale = torch.where(amax.isfinite(), exponent + E8M0_BIAS, E8M0_NAN).to(torch.uint8)
        return scale, e8m0_values(amax.device).index_select(0, E8M0_BIAS - exponent)

    def shared_exponent(self, amax: torch.Tensor) -> torch.Tensor:
        """The exponent of X per block (int32, in [-127, 127]); meaningless where amax is not finite."""
        exponent = elements.floor_log2(amax) - self.emax
        if self.scale_rounding == "up":
            exponent = exponent + (amax > elements.ldexp(self.max, exponent, wide=True)).int()
        return exponent.clamp(-E8M0_BIAS, E8M0_BIAS)  # zeros too: floor_log2(0) is -127

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        scale, packed = p.tensors["scale"], p.tensors["elements"]
        factors = e8m0_values(scale.device, self.unit).index_select(0, scale.int())
        if self.compiled_decode and compiled.active(packed):
            x = blocks.decode_blocks(packed.contiguous(), self.bits, self.code_values(), factors)
        else:
            x = self.decode_elements(packed).view(scale.numel(), -1)
            x *= factors[:, None]
        return x.view(-1)[: like.numel()].to(like.device, like.dtype).reshape(like.shape)

    def encode_elements(self, v: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The codes (uint8) of the scaled elements `v` (float32, which this may overwrite)."""
        raise NotImplementedError

    def decode_elements(self, packed: torch.Tensor) -> torch.Tensor:
        """The float32 values (a new tensor) of the packed codes, in units of `unit`."""
        raise NotImplementedError


@dataclass
class MXFloat(MX):
    """MX with minifloat elements of format `fmt`."""

    fmt: ClassVar[elements.FloatFormat]
    compiled_decode = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.bits, cls.emax, cls.max = cls.fmt.bits, cls.fmt.emax, cls.fmt.max

    def compiled_encode(self, flat, tables):
        return blocks.mx_elements(flat, self.block, self.fmt, *tables)

    def encode_elements(self, v: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return elements.encode(v, self.fmt, generator)

    def decode_elements(self, packed: torch.Tensor) -> torch.Tensor:
        return elements.decode_packed(packed, self.fmt)

    def code_values(self) -> torch.Tensor:
        """The float32 value of every element code (on the CPU), for blocks.decode_blocks."""
        return elements.code_values(self.fmt)


# Tolerances (fraction of max|x|) for the spec's floor scaling: max|block| / X lies in
# [2**emax, 2**(emax + 1)), so the error is at most the larger of half the top binade's step
# (2**-(mbits + 1) of max|block|) and the saturation from just under 2**(emax + 1) down to max.
@QUANTIZERS.register("mxfp8_e4m3")
@dataclass
class MXFP8E4M3(MXFloat):
    fmt = elements.E4M3
    tolerance = 2.0**-3  # 448 of 512


@QUANTIZERS.register("mxfp8_e5m2")
@dataclass
class MXFP8E5M2(MXFloat):
    fmt = elements.E5M2
    compiled_decode = False
    tolerance = 2.0**-3


@QUANTIZERS.register("mxfp6_e3m2")
@dataclass
class MXFP6E3M2(MXFloat):
    fmt = elements.E3M2
    tolerance = 2.0**-3


@QUANTIZERS.register("mxfp6_e2m3")
@dataclass
class MXFP6E2M3(MXFloat):
    fmt = elements.E2M3
    tolerance = 2.0**-4


@QUANTIZERS.register("mxfp4_e2m1")
@dataclass
class MXFP4E2M1(MXFloat):
    fmt = elements.E2M1
    tolerance = 2.0**-2  # 6 of 8


@QUANTIZERS.register("mxint8")
@dataclass
class MXINT8(MX):
    """MX with 8-bit two's complement elements and an implicit scale of 2**-6 (spec section 5.3.2):
    values k / 64 for k in [-128, 127]; encoding saturates symmetrically at +-127 / 64, emax_elem 0."""

    bits = 8
    emax = 0
    max = 127 / 64
    unit = 2.0**-6
    tolerance = 2.0**-7

    def compiled_encode(self, flat, tables):
        scale, scaled = blocks.block_scales(flat, self.block, *tables)
        return self.encode_elements(scaled, None), scale

    def encode_elements(self, v: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return elements.round_integers(v.mul_(64), generator).clamp_(-127, 127).to(torch.int8).view(torch.uint8)

    def decode_elements(self, packed: torch.Tensor) -> torch.Tensor:
        return packed.view(torch.int8).float()  # k, and k / 64 * X is k * (X / 64) exactly
