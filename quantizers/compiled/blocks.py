"""The block-scaled codecs' CPU loops (MX, nvfp4), bit for bit their torch paths:
    block_scales    one pass: each block's maximum, its E8M0 scale by the spec's floor rounding
                    (from a table per float32 exponent field), and x / X;
    minifloat_codes one pass: nearest-even rounding onto a minifloat grid, done on the float32 bits
                    (the mantissa is rounded off in integer arithmetic, as a cast does), saturating;
    packed_codes    minifloat_codes, then the packing (four 6-bit codes into three bytes: one pass);
    mx_elements     block_scales, then packed_codes;
    block_maxima, block_steps, divided_blocks   nvfp4's: each block's max |x|, its E4M3 scale and
                    step, then x / its step;
    decode_blocks   one pass: packed codes -> value table -> times their block's factor.
Temporaries that never leave an encoder live in buffers kept per thread. CPU tensors only.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from quantizers import elements
from quantizers.compiled import inlined, loop
from quantizers.elements import FP8_DTYPES, FloatFormat


def mx_elements(flat: torch.Tensor, block: int, fmt: FloatFormat, scale_codes: torch.Tensor,
                inverses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed element codes, E8M0 scale codes) of an MX encoding with minifloat elements: the
    scales as `block_scales` gives them, the elements as `packed_codes`."""
    scale, scaled = block_scales(flat, block, scale_codes, inverses)
    return packed_codes(scaled, fmt), scale


def block_scales(flat: torch.Tensor, block: int, scale_codes: torch.Tensor, inverses: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(E8M0 scale codes per block, float32 x / X) for float32 `flat` (a multiple of
    `block` long): the block's code and 1 / X are looked up in `scale_codes` and `inverses` by the
    exponent field of its largest magnitude (255, the NaN scale, for a NaN or an inf); such a
    block's scaled values are +0. x / X is this thread's scratch: valid until its next call here."""
    scale = torch.empty(flat.numel() // block, dtype=torch.uint8)
    scaled = _scratch("scaled", flat.numel(), torch.float32)
    x = flat.contiguous().numpy()
    _block_scales(x, x.view(np.int32), block, scale_codes.numpy(), inverses.numpy(), scale.numpy(), scaled.numpy())
    return scale, scaled


def block_maxima(flat: torch.Tensor, block: int) -> torch.Tensor:
    """max |x| (float32) of each `block` consecutive elements of float32 `flat`; NaN
    (sign clear) where a block holds one."""
    top = torch.empty(flat.numel() // block, dtype=torch.int32)
    _block_maxima(flat.contiguous().numpy().view(np.int32), block, top.numpy())
    return top.view(torch.float32)


def divided_blocks(flat: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """x / step of each block of float32 `flat` (len(flat) / len(steps) elements each),
    +0 in a block whose step is not > 0 (0 or NaN). This thread's scratch, as in block_scales."""
    scaled = _scratch("scaled", flat.numel(), torch.float32)
    block = flat.numel() // steps.numel()
    _divided_blocks(flat.contiguous().numpy(), block, steps.contiguous().numpy(), scaled.numpy())
    return scaled


def block_steps(block_amax: torch.Tensor, tensor_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nvfp4's block scales for finite maxima: (E4M3 codes of min(amax / 6 / tensor_scale, 448),
    float32 step = that E4M3 value * tensor_scale), each division and product rounded as torch's."""
    ratios = torch.empty_like(block_amax)
    _block_ratios(block_amax.contiguous().numpy(), tensor_scale.reshape(1).numpy(), ratios.numpy())
    codes = minifloat_codes(ratios, elements.E4M3)
    return codes, decode_blocks(codes, 8, elements.code_values(elements.E4M3), tensor_scale.reshape(1))


def packed_codes(v: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """elements.pack(minifloat_codes(v, fmt), fmt.bits), a multiple of four codes for 6 bits."""
    if fmt.bits == 8:
        return minifloat_codes(v, fmt)
    codes = minifloat_codes(v, fmt, out=_scratch("codes", v.numel(), torch.uint8))
    if fmt.bits == 4:
        return elements.pack(codes, 4)
    packed = torch.empty(codes.numel() // 4 * 3, dtype=torch.uint8)
    _pack6(codes.numpy().view(np.uint32), packed.numpy())
    return packed


def minifloat_codes(v: torch.Tensor, fmt: FloatFormat, out: torch.Tensor | None = None) -> torch.Tensor:
    """elements.encode(v, fmt, None) for contiguous float32 `v` without NaN: nearest-even codes
    (uint8, into `out` if given), saturating at +-max; -0.0 keeps its sign in FP8 (as torch's cast
    does) and is +0 in the narrower formats (as their rounding by arithmetic gives)."""
    assert fmt.bits <= 8 and not fmt.wide, fmt  # one-byte codes; its half step above float32's subnormals
    codes = torch.empty(v.numel(), dtype=torch.uint8) if out is None else out
    bits = v.reshape(-1).contiguous().numpy().view(np.int32)
    _minifloat_codes(bits, fmt.mbits, fmt.emin, fmt.max_code, 1 << (fmt.bits - 1), fmt in FP8_DTYPES, codes.numpy())
    return codes


def decode_blocks(packed: torch.Tensor, bits: int, values: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """float32 values[code] * factors[block] of the codes `pack` packed at `bits` (4, 6 or 8), in
    blocks of len(codes) / len(factors) codes, the product rounded once, as torch's multiply does.
    6-bit codes are first spread to one per byte (a scratch buffer): the lookups then vectorize."""
    count = packed.numel() * 8 // bits
    if packed.dtype != torch.uint8 or factors.dtype != torch.float32 or count % factors.numel():
        raise ValueError(f"decode_blocks: {count} codes ({packed.dtype}) do not fill {factors.numel()} blocks "
                         f"({factors.dtype} factors)")
    packed = packed.contiguous()
    decoded = torch.empty(count, dtype=torch.float32)
    if bits == 6:
        codes = _scratch("codes", count, torch.uint8)
        _unpack6(packed.numpy(), codes.numpy().view(np.uint32))
        packed, bits = codes, 8
    _decode_blocks(packed.numpy(), bits, count // factors.numel(), values.numpy(), factors.numpy(), decoded.numpy())
    return decoded


_local = threading.local()
_E2M1_MAX, _E4M3_MAX = np.float32(elements.E2M1.max), np.float32(elements.E4M3.max)  # constants to the loops


def _scratch(name: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A buffer of this thread, kept between calls: a fresh one for every message would cost its
    page faults (about as much as a pass over it), for values that never leave the encoder."""
    held = getattr(_local, name, None)
    if held is None or held.numel() < numel:
        held = torch.empty(numel, dtype=dtype)
        setattr(_local, name, held)
    return held[:numel]


@loop
def _block_scales(x, xbits, block, scale_codes, inverses, scale, scaled):
    for i in range(scale.shape[0]):
        start = i * block
        field = _largest_magnitude(xbits, start, block) >> 23  # 255 for inf and NaN alike
        scale[i] = scale_codes[field]
        inverse = inverses[field]
        for j in range(block):
            scaled[start + j] = x[start + j] * inverse
        if field == 255:  # the block crosses as +0 (x * 1 / X would keep signs, and NaN)
            for j in range(block):
                scaled[start + j] = 0.0


@loop
def _block_maxima(bits, block, top):
    for i in range(top.shape[0]):
        top[i] = _largest_magnitude(bits, i * block, block)


@inlined
def _largest_magnitude(bits, start, count):
    """The largest of bits[start:start + count] with the sign bit cleared: magnitudes order as
    their float32 bits do (NaN above inf)."""
    most = 0
    for j in range(count):  # (numba vectorizes range(n) loops, not range(start, stop) ones)
        most = max(most, bits[start + j] & 0x7FFFFFFF)
    return most


@loop
def _divided_blocks(x, block, steps, scaled):
    for i in range(steps.shape[0]):
        start = i * block
        step = steps[i]
        for j in range(block):
            scaled[start + j] = x[start + j] / step
        if not step > 0:
            for j in range(block):
                scaled[start + j] = 0.0


@loop
def _block_ratios(block_amax, tensor_scale, ratios):
    scale = tensor_scale[0]
    for i in range(ratios.shape[0]):
        ratios[i] = min(block_amax[i] / _E2M1_MAX / scale, _E4M3_MAX)


@loop
def _minifloat_codes(bits, mbits, emin, max_code, sign_bit, signed_zero, codes):
    # Branch-free, so that the loop vectorizes. For a float32 with exponent field f:
    #   normal in the format (f >= 127 + emin): round the mantissa to mbits bits, ties to even; the
    #   carry moves into the exponent, as the codes do; rebias the exponent;
    #   below it: the significand (implicit bit set) shifted down to units of the format's
    #   subnormal step 2**(emin - mbits), ties to even (f = 0, the float32 subnormals, lie far
    #   below any format's half step and round to 0 either way).
    one = np.int32(1)
    shift = np.int32(23 - mbits)
    half = np.int32((1 << (22 - mbits)) - 1)
    rebias = np.int32((126 + emin) << mbits)
    lowest = np.int32(127 + emin)
    base = np.int32(150 + emin - mbits)
    top, sign = np.int32(max_code), np.int32(sign_bit)
    for i in range(bits.shape[0]):
        b = bits[i]
        magnitude = b & np.int32(0x7FFFFFFF)
        field = magnitude >> np.int32(23)
        normal = ((magnitude + half + ((magnitude >> shift) & one)) >> shift) - rebias
        significand = (magnitude & np.int32(0x7FFFFF)) | np.int32(0x800000)
        down = max(min(base - field, np.int32(31)), one)  # in range even where `normal` is taken
        low = (significand + ((one << (down - one)) - one) + ((significand >> down) & one)) >> down
        code = min(normal if field >= lowest else low, top)
        negative = (b < np.int32(0)) & ((magnitude != np.int32(0)) | signed_zero)
        codes[i] = np.uint8(code | (sign if negative else np.int32(0)))


@loop
def _pack6(fours, packed):
    for i in range(fours.shape[0]):
        w = fours[i]  # four codes, one per byte (little-endian)
        group = (w & 0x3F) | ((w >> 2) & 0xFC0) | ((w >> 4) & 0x3F000) | ((w >> 6) & 0xFC0000)
        packed[3 * i] = group & 0xFF
        packed[3 * i + 1] = (group >> 8) & 0xFF
        packed[3 * i + 2] = (group >> 16) & 0xFF


@loop
def _unpack6(packed, fours):
    for i in range(fours.shape[0]):  # three bytes -> four codes, one per byte (little-endian)
        group = np.uint32(packed[3 * i]) | (np.uint32(packed[3 * i + 1]) << 8) | (np.uint32(packed[3 * i + 2]) << 16)
        fours[i] = (group & 0x3F) | ((group << 2) & 0x3F00) | ((group << 4) & 0x3F0000) | ((group << 6) & 0x3F000000)


@loop
def _decode_blocks(packed, bits, block, values, factors, out):
    for i in range(factors.shape[0]):
        factor = factors[i]
        start = i * block
        if bits == 8:
            for j in range(block):
                out[start + j] = values[packed[start + j]] * factor
        else:  # 4 bits: each element reads its own byte, so the stores stay contiguous
            first = start >> 1
            for j in range(block):
                out[start + j] = values[(packed[first + (j >> 1)] >> ((j & 1) << 2)) & 0xF] * factor
