"""The element formats behind the MX and nvfp4 codecs: their values, bit packing, exact scaling."""

import math

import pytest
import torch

from quantizers import elements


@pytest.mark.parametrize("fmt, emax, max_code", [
    (elements.E2M1, 2, 0b0111), (elements.E2M3, 2, 0b011111), (elements.E3M2, 4, 0b011111),
    (elements.E4M3, 8, 0x7E), (elements.E5M2, 15, 0x7B),
])
def test_largest_values(fmt, emax, max_code):
    assert (fmt.emax, fmt.max_code, fmt.value(max_code)) == (emax, max_code, fmt.max)


@pytest.mark.parametrize("fmt", [elements.E4M3, elements.E5M2])
def test_fp8_values_match_torchs_dtypes(fmt):
    codes = torch.arange(256, dtype=torch.uint8)
    native = codes.view(elements.FP8_DTYPES[fmt]).float()
    finite = native.isfinite()
    assert torch.equal(torch.tensor([fmt.value(c) for c in range(256)])[finite], native[finite])


@pytest.mark.parametrize("fmt", [elements.E2M1, elements.E2M3, elements.E3M2, elements.E4M3, elements.E5M2])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_every_finite_value_encodes_to_its_code(fmt, rounding):
    sign = 2 ** (fmt.bits - 1)
    codes = [c for c in range(2**fmt.bits) if 0 < c & (sign - 1) <= fmt.max_code or c == 0]  # -0 encodes as 0
    values = torch.tensor([fmt.value(c) for c in codes])
    generator = torch.Generator().manual_seed(0) if rounding == "stochastic" else None
    assert elements.encode(values, fmt, generator).tolist() == codes


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_pack_unpack_round_trip(bits):
    codes = torch.randint(0, 2**bits, (48,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    packed = elements.pack(codes, bits)
    assert packed.numel() == 48 * bits // 8
    assert torch.equal(elements.unpack(packed, bits), codes)


def test_ldexp_is_exact_down_to_the_smallest_subnormal():
    k = torch.arange(-149, 128)
    assert elements.ldexp(torch.ones(k.shape), k, wide=True).tolist() == [math.ldexp(1.0, i) for i in range(-149, 128)]
    assert elements.ldexp(torch.full((254,), 1.5), torch.arange(-126, 128)).tolist() == [
        math.ldexp(1.5, i) for i in range(-126, 128)]
