"""Minifloat element formats: rounding onto their grid, their bit codes, and packing codes into bytes.

A format is a sign-magnitude binary float with subnormals (OCP MX v1.0 section 5.3, OCP FP8).
Codes are its bit patterns, sign in the top bit; codes 0 .. max_code of one sign increase with the
value, so rounding yields the code directly: within the binade 2**b (b >= emin) the grid spacing
is 2**(b - mbits), and the code is (b - emin) * 2**mbits + |x| / spacing, a carry out of the
mantissa moving into the next binade exactly as the bit pattern does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FloatFormat:
    """`ebits` exponent bits with `bias`, `mbits` mantissa bits; `max` is the largest finite value."""

    ebits: int
    mbits: int
    bias: int
    max: float

    @property
    def bits(self) -> int:
        return 1 + self.ebits + self.mbits

    @property
    def emin(self) -> int:
        """The exponent of the smallest normal value; subnormals share its spacing."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """The exponent of the largest normal value (OCP MX's emax_elem)."""
        return math.floor(math.log2(self.max))

    @property
    def wide(self) -> bool:
        """Whether its grid steps reach below 2**-126 (BF16's do), needing `ldexp(wide=True)`."""
        return self.emin - self.mbits < -126

    @property
    def max_code(self) -> int:
        """The code of `max`: where rounding saturates."""
        mantissa = self.max / 2.0**self.emax - 1
        return (self.emax + self.bias) * 2**self.mbits + int(mantissa * 2**self.mbits)

    def value(self, code: int) -> float:
        """The value of a code that is neither inf nor NaN."""
        sign = -1.0 if code >> (self.bits - 1) else 1.0
        e, m = (code >> self.mbits) & (2**self.ebits - 1), code & (2**self.mbits - 1)
        if e == 0:
            return sign * m * 2.0 ** (self.emin - self.mbits)
        return sign * (1 + m / 2**self.mbits) * 2.0 ** (e - self.bias)


E2M1 = FloatFormat(ebits=2, mbits=1, bias=1, max=6.0)
E2M3 = FloatFormat(ebits=2, mbits=3, bias=1, max=7.5)
E3M2 = FloatFormat(ebits=3, mbits=2, bias=3, max=28.0)
E4M3 = FloatFormat(ebits=4, mbits=3, bias=7, max=448.0)  # torch.float8_e4m3fn
E5M2 = FloatFormat(ebits=5, mbits=2, bias=15, max=57344.0)  # torch.float8_e5m2
FP16 = FloatFormat(ebits=5, mbits=10, bias=15, max=65504.0)
BF16 = FloatFormat(ebits=8, mbits=7, bias=127, max=float(torch.finfo(torch.bfloat16).max))
FP8_DTYPES = {E4M3: torch.float8_e4m3fn, E5M2: torch.float8_e5m2}
DTYPES = FP8_DTYPES | {FP16: torch.float16, BF16: torch.bfloat16}  # the formats torch has


def ldexp(x: torch.Tensor, k: torch.Tensor | int, wide: bool = False) -> torch.Tensor:
    """x * 2**k, exact whenever the result is representable, for integer k in [-126, 127], or in
    [-252, 254] when `wide`. 2**k is built from its float32 bits (no pow() rounding); `wide` uses two
    such factors, each a normal number, as one below 2**-126 would not be."""
    if not wide:
        return x * pow2(k)
    half = torch.div(k, 2, rounding_mode="floor")
    return x * pow2(half) * pow2(k - half)


def pow2(k: torch.Tensor | int) -> torch.Tensor:
    """2**k as float32 for integer k in [-126, 127] (a tensor, or an int as a 0-dim tensor)."""
    k = torch.as_tensor(k, dtype=torch.int32)
    return ((k.int() + 127) << 23).view(torch.float32)


def floor_log2(a: torch.Tensor) -> torch.Tensor:
    """floor(log2 a) (int32) for float32 a > 0 normal, read from its exponent bits; -127 for 0 and
    float32 subnormals, 128 for inf and NaN. The sign bit is ignored."""
    return ((a.view(torch.int32) >> 23) & 0xFF) - 127


def round_to_grid(a: torch.Tensor, fmt: FloatFormat, generator: torch.Generator | None):
    """(r, binade) with a ~ r * 2**(binade - mbits): float32 `a` >= 0 rounded onto the format's grid by
    `round_integers` (stochastic rounding is unbiased). No saturation here; inf gives r = inf."""
    binade = floor_log2(a).clamp(fmt.emin, 127)  # zeros and subnormals share the lowest binade
    return round_integers(ldexp(a, fmt.mbits - binade, fmt.wide), generator), binade


def round_integers(y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """y rounded to integers (float32): to nearest even, or, given a generator, up with probability
    y - floor(y). The draws are multiples of 2**-24, so that probability is exact to 2**-24."""
    if generator is None:
        return y.round()
    r = y.floor()
    return r + (torch.rand(y.shape, generator=generator, device=y.device) < y - r)


def round_values(x: torch.Tensor, fmt: FloatFormat, generator: torch.Generator | None) -> torch.Tensor:
    """x (float32) rounded onto the format's grid, signs kept; NaN stays NaN, no saturation."""
    r, binade = round_to_grid(x.abs(), fmt, generator)
    return ldexp(r, binade - fmt.mbits, fmt.wide).copysign(x)


def encode(x: torch.Tensor, fmt: FloatFormat, generator: torch.Generator | None) -> torch.Tensor:
    """Codes (uint8) of float32 `x` rounded onto the format, saturating at +-max (inf too).

    NaN must be replaced before; its code would be meaningless."""
    if generator is None and fmt in FP8_DTYPES:  # torch's cast rounds to nearest even, faster
        return x.clamp(-fmt.max, fmt.max).to(FP8_DTYPES[fmt]).view(torch.uint8)
    if generator is None:  # few codes: a binary search among the midpoints, then the code, is faster
        boundaries, codes = signed_grid(fmt, x.device)
        return codes[torch.bucketize(x, boundaries, right=True)]
    r, binade = round_to_grid(x.abs(), fmt, generator)
    magnitude = ((binade - fmt.emin) * 2**fmt.mbits + r).clamp(max=fmt.max_code).to(torch.uint8)
    return torch.where(x < 0, magnitude | (1 << (fmt.bits - 1)), magnitude)


@functools.lru_cache(maxsize=None)
def signed_grid(fmt: FloatFormat, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(boundaries, codes): the codes from -max through -0 and +0 to max, ordered by value, and the
    midpoints between neighbours, so that codes[bucketize(x, boundaries, right=True)] rounds x to
    nearest, saturating, with the codes the arithmetic path gives (negatives that round to zero
    are -0). A value on a midpoint goes up unless the code below is even (ties to even): that
    midpoint is nudged up one float32 ulp; the one between -0 and +0 stays 0."""
    sign = 1 << (fmt.bits - 1)
    order = [sign | c for c in range(fmt.max_code, -1, -1)] + list(range(fmt.max_code + 1))
    values = torch.tensor([fmt.value(c) for c in order], dtype=torch.float64)
    mids = ((values[:-1] + values[1:]) / 2).float()  # exact: one bit more than the format has
    nudge = torch.tensor([c % 2 == 0 for c in order[:-1]]) & (mids != 0)
    boundaries = torch.where(nudge, torch.nextafter(mids, torch.tensor(torch.inf)), mids)
    return boundaries.to(device), torch.tensor(order, dtype=torch.uint8, device=device)


@functools.lru_cache(maxsize=None)
def decoder(fmt: FloatFormat, device: torch.device) -> torch.Tensor:
    """The float32 value of every code, indexed by code, for a format without a torch dtype (decode
    reads FP8 codes through torch's own)."""
    return torch.tensor([fmt.value(c) for c in range(2**fmt.bits)], dtype=torch.float32, device=device)


def decode(codes: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """The float32 values of `codes` (uint8)."""
    if fmt in FP8_DTYPES:
        return codes.view(FP8_DTYPES[fmt]).float()
    return decoder(fmt, codes.device)[codes.long()]


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes of `bits` (4, 6 or 8) bits packed into bytes, little-endian: the first code in the
    lowest bits. 4-bit: two codes per byte; 6-bit: four codes per three bytes. len(codes) * bits must
    be a multiple of 8 (of 24 for 6 bits)."""
    if bits == 8:
        return codes
    if bits == 4:
        pairs = codes.view(-1, 2)
        return pairs[:, 0] | (pairs[:, 1] << 4)
    quads = codes.view(-1, 4).int()
    word = quads[:, 0] | (quads[:, 1] << 6) | (quads[:, 2] << 12) | (quads[:, 3] << 18)
    return torch.stack([word & 0xFF, (word >> 8) & 0xFF, word >> 16], dim=1).to(torch.uint8).view(-1)


def unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """The codes `pack` packed, in order."""
    if bits == 8:
        return packed
    if bits == 4:
        return torch.stack([packed & 0x0F, packed >> 4], dim=1).view(-1)
    triples = packed.view(-1, 3).int()
    word = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
    return torch.stack([(word >> s) & 0x3F for s in (0, 6, 12, 18)], dim=1).to(torch.uint8).view(-1)
