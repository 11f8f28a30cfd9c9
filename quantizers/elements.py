"""Minifloat element formats: rounding onto their grid, their bit codes, and packing codes into bytes.

A format is a sign-magnitude binary float with subnormals (OCP MX v1.0 section 5.3, OCP FP8).
Codes are its bit patterns, sign in the top bit; codes 0 .. max_code of one sign increase with the
value, so rounding yields the code directly: within the binade 2**b (b >= emin) the grid spacing
is 2**(b - mbits), and the code is (b - emin) * 2**mbits + |x| / spacing, a carry out of the
mantissa moving into the next binade exactly as the bit pattern does.

That arithmetic (`grid_codes`) is the definition, and stochastic rounding's path. Nearest rounding
takes faster routes to the same codes: torch's cast for FP8, the FP8 cast that hosts the grid for
FP6 (`hosted_codes`), a table indexed by the value's top half rounded to odd for FP4
(`odd_index`). `decode_packed` looks codes up two at a time. Packing and the pair indices read
codes through wider integer views, as a little-endian host lays them out.
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
HOSTS = {E2M3: E4M3, E3M2: E5M2}  # see hosted_codes


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
    """y (float32, a temporary: nearest rounding overwrites it) rounded to integers: to nearest even,
    or, given a generator, up with probability y - floor(y). The draws are multiples of 2**-24, so
    that probability is exact to 2**-24."""
    if generator is None:
        return y.round_()
    r = y.floor()
    return r + (torch.rand(y.shape, generator=generator, device=y.device) < y - r)


def round_values(x: torch.Tensor, fmt: FloatFormat, generator: torch.Generator | None) -> torch.Tensor:
    """x (float32) rounded onto the format's grid, signs kept; NaN stays NaN, no saturation."""
    r, binade = round_to_grid(x.abs(), fmt, generator)
    return ldexp(r, binade - fmt.mbits, fmt.wide).copysign(x)


def encode(x: torch.Tensor, fmt: FloatFormat, generator: torch.Generator | None) -> torch.Tensor:
    """Codes (uint8) of float32 `x` (a contiguous temporary, which this may overwrite) rounded onto
    the format, saturating at +-max (inf too); -0.0 encodes as +0 (as -0 in FP8, whose cast keeps
    it), a negative value that rounds to zero as -0.

    NaN must be replaced before; its code would be meaningless."""
    if generator is None and fmt in FP8_DTYPES:  # torch's cast rounds to nearest even, faster
        return x.clamp_(-fmt.max, fmt.max).to(FP8_DTYPES[fmt]).view(torch.uint8)
    if generator is None and fmt in HOSTS:
        return hosted_codes(x, fmt)
    if generator is None:
        return nearest_codes(fmt, x.device).index_select(0, odd_index(x)).view(x.shape)
    return grid_codes(x, fmt, generator)


def grid_codes(x: torch.Tensor, fmt: FloatFormat, generator: torch.Generator | None) -> torch.Tensor:
    """`encode` by arithmetic: |x| rounded onto the grid by `round_to_grid`, then the sign."""
    r, binade = round_to_grid(x.abs(), fmt, generator)
    magnitude = ((binade - fmt.emin) * 2**fmt.mbits + r).clamp(max=fmt.max_code).to(torch.uint8)
    return torch.where(x < 0, magnitude | (1 << (fmt.bits - 1)), magnitude)


def hosted_codes(x: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Nearest-rounding codes of `x` (overwritten) through torch's cast to the FP8 format that hosts
    `fmt`: one with as many mantissa bits and a lower emin, whose grid scaled by 2**(host emin - emin)
    holds fmt's, with the same exponent fields. Saturation clamps the magnitude code (codes grow
    with the value, inf and NaN last); the sign moves down."""
    host = HOSTS[fmt]
    x.add_(0.0)  # -0.0 + 0.0 is +0.0, code +0; a negative that the scaling flushes stays -0.0, code -0
    codes = x.mul_(2.0 ** (host.emin - fmt.emin)).to(FP8_DTYPES[host]).view(torch.uint8)
    sign = 1 << (fmt.bits - 1)
    signs = codes >> (8 - fmt.bits)
    signs &= sign
    codes &= 0x7F
    codes.clamp_(max=fmt.max_code)
    codes |= signs
    return codes


def odd_index(x: torch.Tensor) -> torch.Tensor:
    """The top 16 bits (int32, 0..65535) of float32 `x` (flattened) rounded to odd: bit 16 is set
    when any of the 16 bits below it is. Rounding that index's value to nearest onto a grid whose
    points and midpoints all fit in the top 15 bits (at most 5 mantissa bits) gives what rounding
    x does: an index with its lowest bit set stands for values strictly between two such points."""
    bits = x.reshape(-1).view(torch.int32)
    index = bits & 0xFFFF
    index += 0xFFFF  # carries into bit 16 unless the low half is zero
    index |= bits
    index >>= 16
    index &= 0xFFFF  # the shift copied the sign bit
    return index


@functools.lru_cache(maxsize=None)
def nearest_codes(fmt: FloatFormat, device: torch.device) -> torch.Tensor:
    """The nearest-rounding code (uint8) of every `odd_index`, from `grid_codes` on its value."""
    assert fmt.mbits <= 5, fmt
    values = (torch.arange(1 << 16, dtype=torch.int32) << 16).view(torch.float32)
    return grid_codes(values, fmt, None).to(device)


def decode(codes: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """The float32 values of `codes` (uint8), one by one: through torch's dtype for FP8, else through
    a table of every code's value. `decode_packed` is the fast path."""
    if fmt in FP8_DTYPES:
        return codes.view(FP8_DTYPES[fmt]).float()
    values = torch.tensor([fmt.value(c) for c in range(2**fmt.bits)], dtype=torch.float32, device=codes.device)
    return values[codes.long()]


@functools.lru_cache(maxsize=None)
def code_values(fmt: FloatFormat) -> torch.Tensor:
    """The float32 value of every code of `fmt` (on the CPU), NaN and inf included."""
    return decode(torch.arange(2**fmt.bits, dtype=torch.int32).to(torch.uint8), fmt)


def decode_packed(packed: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """The float32 values of the codes `pack` packed, bit for bit decode(unpack(packed, fmt.bits), fmt)."""
    if fmt == E5M2:  # its codes are the top bytes of FP16's, which converts fast
        half = packed.to(torch.int16)
        half <<= 8
        return half.view(torch.float16).float()
    if packed.numel() % 2 and fmt.bits == 8:  # an odd count of one-byte codes makes no pairs
        return decode(packed, fmt)
    return decode_pairs(packed, _format_pairs(fmt, packed.device), fmt.bits)


def decode_pairs(packed: torch.Tensor, table: torch.Tensor, bits: int) -> torch.Tensor:
    """The float32 values of the codes `pack` packed, two per lookup in a `pair_table`."""
    return table.index_select(0, pair_index(packed, bits)).view(torch.float32)


@functools.lru_cache(maxsize=None)
def _format_pairs(fmt: FloatFormat, device: torch.device) -> torch.Tensor:
    return pair_table(code_values(fmt), fmt.bits).to(device)


def pair_table(values: torch.Tensor, bits: int) -> torch.Tensor:
    """(int64) row `pair_index` of two packed codes holds their two float32 values, in order, from
    `values`, the float32 value of every code."""
    every = torch.arange(2**bits)
    pairs = torch.cartesian_prod(every, every).to(torch.uint8)  # (first, second)
    groups = torch.nn.functional.pad(pairs, (0, 2)) if bits == 6 else pairs  # 6 bits pack in fours
    rows = pair_index(pack(groups.reshape(-1), bits), bits).view(len(pairs), -1)[:, 0]
    table = torch.empty(len(pairs), 2)
    table[rows] = values[pairs.long()]
    return table.view(torch.int64).view(-1)


def pair_index(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """(int32) one index per two packed codes, in order, from the 2 * bits bits that hold them."""
    if bits == 4:
        return packed.int()
    if bits == 8:
        return packed.view(torch.int16).int().bitwise_and_(0xFFFF)
    words = packed.index_select(0, _spread(packed.numel() // 3, packed.device)).view(torch.int32)
    index = torch.empty(len(words), 2, dtype=torch.int32, device=packed.device)
    torch.bitwise_and(words, 0xFFF, out=index[:, 0])  # four codes in 24 bits (host byte order, little-endian)
    torch.bitwise_right_shift(words, 12, out=index[:, 1])
    index[:, 1] &= 0xFFF  # the fourth byte repeated the first
    return index.view(-1)


@functools.lru_cache(maxsize=8)
def _spread(triples: int, device: torch.device) -> torch.Tensor:
    """(int32) byte positions that spread `triples` three-byte groups over 32-bit words, the fourth
    byte of each word repeating the group's first."""
    positions = torch.arange(3 * triples, dtype=torch.int32, device=device).view(-1, 3)
    return torch.cat([positions, positions[:, :1]], dim=1).view(-1)


def zero_rows(t: torch.Tensor, keep: torch.Tensor) -> None:
    """Set the rows of 2-D `t` where `keep` (bool) is False to +0, in place: on the CPU through their
    indices, where there are any (the check costs less than a pass over t); elsewhere through a
    mask, without a host sync."""
    if t.device.type != "cpu":
        t.masked_fill_(~keep[:, None], 0.0)
    elif not keep.all():
        t.index_fill_(0, (~keep).nonzero().view(-1), 0.0)


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes of `bits` (4, 6 or 8) bits packed into bytes, little-endian: the first code in the
    lowest bits. 4-bit: two codes per byte; 6-bit: four codes per three bytes. len(codes) * bits must
    be a multiple of 8 (of 24 for 6 bits)."""
    if bits == 8:
        return codes
    if bits == 4:  # two codes, one per byte (host byte order, little-endian): the second moves down
        pair = codes.view(torch.int16)
        packed = pair >> 4
        packed |= pair
        return packed.to(torch.uint8)
    four = codes.view(torch.int32)  # four codes, one per byte (host byte order, little-endian)
    word, high = four & 0x003F003F, four >> 2
    word |= high.bitwise_and_(0x0FC00FC0)  # pairs: 12 bits in each 16
    high = torch.bitwise_right_shift(word, 4, out=high).bitwise_and_(0x00FFF000)
    word.bitwise_and_(0x00000FFF).bitwise_or_(high)  # fours: 24 bits in 32
    return word.view(torch.uint8).index_select(0, _three_of_four(len(word), codes.device))


@functools.lru_cache(maxsize=8)
def _three_of_four(words: int, device: torch.device) -> torch.Tensor:
    """(int32) the positions of the three low bytes of each of `words` 32-bit words (a gather is
    faster than a strided copy)."""
    return torch.arange(4 * words, dtype=torch.int32, device=device).view(-1, 4)[:, :3].reshape(-1)


def unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """The codes `pack` packed, in order."""
    if bits == 8:
        return packed
    if bits == 4:
        return torch.stack([packed & 0x0F, packed >> 4], dim=1).view(-1)
    triples = packed.view(-1, 3).int()
    word = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
    return torch.stack([(word >> s) & 0x3F for s in (0, 6, 12, 18)], dim=1).to(torch.uint8).view(-1)
