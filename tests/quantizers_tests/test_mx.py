"""MX v1.0 encodings worked out by hand from the spec: shared exponent, element codes and packing,
saturation, the rounded-up scale, NaN and inf, all-zero blocks, a ragged last block."""

import math

import pytest
import torch

from bench.errors import UsageError
from quantizers import make_codec

NAN, INF = math.nan, math.inf


def encode(name, values, **args):
    codec = make_codec(name, tuple(args.items()))
    x = torch.tensor(values, dtype=torch.float32)
    p = codec.encode(x)
    return p, codec.decode(p, like=x)


def block(*head, size=32):
    return list(head) + [0.0] * (size - len(head))


def test_fp4_codes_and_packing():
    # max 6 = 1.5 * 2**2 and E2M1's emax is 2: X = 2**0, scale code 127. Codes (sign, E, M):
    # 1 -> 0010, 2 -> 0100, 3 -> 0101, 6 -> 0111, 0.5 (subnormal) -> 0001, -1.5 -> 1011; low nibble first.
    p, y = encode("mxfp4_e2m1", block(1.0, 2.0, 3.0, 6.0, 0.5, -1.5))
    assert p.tensors["scale"].tolist() == [127]
    assert p.tensors["elements"].tolist() == [0x42, 0x75, 0xB1] + [0] * 13
    assert y.tolist() == block(1.0, 2.0, 3.0, 6.0, 0.5, -1.5)


def test_fp4_rounds_ties_to_even():
    # Between 2 and 3 (step 1) and between 4 and 6 (step 2), ties go to the even mantissa;
    # 0.25 and 0.75 are ties among the subnormals 0, 0.5, 1.
    _, y = encode("mxfp4_e2m1", block(6.0, 2.5, 5.0, 0.25, 0.75, 3.4))
    assert y.tolist() == block(6.0, 2.0, 4.0, 0.0, 1.0, 3.0)


def test_shared_exponent_follows_the_block_maximum():
    # max 0.1: floor(log2 0.1) = -4, minus emax 2: X = 2**-6, code 121; 0.1 * 64 = 6.4 saturates to 6.
    p, y = encode("mxfp4_e2m1", block(0.1, 0.05))
    assert p.tensors["scale"].tolist() == [121]
    assert y[:2].tolist() == [6 / 64, 3 / 64]


def test_floor_scale_saturates_and_up_scale_does_not():
    # 7.9: X = 2**(2 - 2) = 1 and 7.9 saturates to 6. Rounded up: 7.9 > 6 * 1, so X = 2, and
    # 7.9 / 2 = 3.95 rounds to 4 (code 0110), decoded 8.
    p, y = encode("mxfp4_e2m1", block(7.9))
    assert (p.tensors["scale"].tolist(), p.tensors["elements"][0].item(), y[0].item()) == ([127], 0x07, 6.0)
    p, y = encode("mxfp4_e2m1", block(7.9), scale_rounding="up")
    assert (p.tensors["scale"].tolist(), p.tensors["elements"][0].item(), y[0].item()) == ([128], 0x06, 8.0)


def test_up_scale_keeps_the_spec_scale_when_nothing_saturates():
    p, _ = encode("mxfp4_e2m1", block(6.0), scale_rounding="up")
    assert p.tensors["scale"].tolist() == [127]


def test_fp6_e3m2_packs_four_codes_in_three_bytes():
    # max 28 = 1.75 * 2**4, emax 4: X = 1. 1 -> 0 011 00 = 12; -28 -> 1 111 11 = 63;
    # 2**-4 (the smallest subnormal, 2**(emin - mbits) = 2**(-2 - 2)) -> 1; 3.5 -> 0 100 11 = 19.
    # 12 | 63 << 6 | 1 << 12 | 19 << 18 = 0x4C1FCC, little-endian.
    p, y = encode("mxfp6_e3m2", [1.0, -28.0, 0.0625, 3.5], block=4)
    assert p.tensors["elements"].tolist() == [0xCC, 0x1F, 0x4C]
    assert p.tensors["scale"].tolist() == [127]
    assert y.tolist() == [1.0, -28.0, 0.0625, 3.5]


def test_fp6_e2m3_codes():
    # max 7.5 = 1.875 * 2**2, emax 2: X = 1. 7.5 -> 0 11 111 = 31; -0.125 (subnormal, step 2**-3) -> 1 00 001 = 33.
    # 31 | 33 << 6 = 0x85F.
    p, _ = encode("mxfp6_e2m3", [7.5, -0.125, 0.0, 0.0], block=4)
    assert p.tensors["elements"].tolist() == [0x5F, 0x08, 0x00]


def test_fp8_e4m3_codes_saturation_and_up_scale():
    # max 448, emax 8: X = 1. 448 -> 0x7E, 1 -> 0x38, -2**-9 (smallest subnormal) -> 0x81.
    p, _ = encode("mxfp8_e4m3", block(448.0, 1.0, -(2.0**-9)))
    assert p.tensors["elements"][:3].tolist() == [0x7E, 0x38, 0x81]
    # 500: X = 2**(8 - 8) = 1 and 500 saturates to 448. Rounded up, X = 2: 250 rounds (step 16) to
    # 256 = 2**8, E 15 M 0: 0x78.
    p, y = encode("mxfp8_e4m3", block(500.0))
    assert (p.tensors["elements"][0].item(), y[0].item()) == (0x7E, 448.0)
    p, y = encode("mxfp8_e4m3", block(500.0), scale_rounding="up")
    assert (p.tensors["scale"].tolist(), p.tensors["elements"][0].item(), y[0].item()) == ([128], 0x78, 512.0)


def test_fp8_e5m2_saturates_instead_of_overflowing():
    # max 57344 = 1.75 * 2**15, emax 15. 65535: X = 1 and it saturates to 57344 (0x7B), not inf.
    p, y = encode("mxfp8_e5m2", block(65535.0))
    assert (p.tensors["elements"][0].item(), y[0].item()) == (0x7B, 57344.0)


def test_int8_codes_and_saturation():
    # Elements k / 64, emax 0. max 1.984375 = 127/64: X = 1. 1 -> 64, -0.5 -> -32 (0xE0), 2**-6 -> 1.
    p, y = encode("mxint8", block(1.984375, 1.0, -0.5, 2.0**-6))
    assert p.tensors["elements"][:4].tolist() == [127, 64, 0xE0, 1]
    assert y[:4].tolist() == [1.984375, 1.0, -0.5, 2.0**-6]
    # 1.999: X = 1, and 127.9 rounds to 128, which saturates to 127.
    assert encode("mxint8", block(1.999))[1][0].item() == 1.984375
    # 3: X = 2, 1.5 -> 96; -0.75 -> -24.
    p, _ = encode("mxint8", block(3.0, -0.75))
    assert (p.tensors["scale"].tolist(), p.tensors["elements"][:2].tolist()) == ([128], [96, 256 - 24])


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_a_nan_or_inf_makes_its_block_nan(bad):
    p, y = encode("mxfp8_e4m3", block(1.0, bad) + block(2.0))
    assert p.tensors["scale"].tolist() == [255, 120]  # 2: X = 2**(1 - 8)
    assert torch.isnan(y[:32]).all()
    assert y[32:].tolist() == block(2.0)


def test_an_all_zero_block_has_scale_code_zero():
    p, y = encode("mxfp6_e2m3", block(1.0) + block())
    assert p.tensors["scale"].tolist() == [125, 0]  # 1: X = 2**(0 - 2)
    assert p.tensors["elements"][24:].tolist() == [0] * 24
    assert y.tolist() == block(1.0) + block()


def test_tiny_blocks_clamp_the_shared_exponent_to_minus_127():
    # 2**-130: floor(log2) - 2 = -132 is below E8M0's range; X = 2**-127 and 2**-3 rounds to 0.
    p, y = encode("mxfp4_e2m1", block(2.0**-130))
    assert p.tensors["scale"].tolist() == [0]
    assert y[0].item() == 0.0


def test_gradient_sized_block():
    # max 2**-20 (~1e-6) = 1.0 * 2**-20, E4M3 emax 8: X = 2**-28, code 99; elements exact.
    p, y = encode("mxfp8_e4m3", block(2.0**-20, -3 * 2.0**-24))
    assert p.tensors["scale"].tolist() == [99]
    assert y[:2].tolist() == [2.0**-20, -3 * 2.0**-24]


def test_a_ragged_last_block_is_padded():
    # 33 values: a full block (max 1: X = 2**(0 - 8), code 119) and one of 3 (X = 2**(1 - 8)) + 31 zeros.
    x = torch.tensor([1.0] * 32 + [3.0])
    codec = make_codec("mxfp8_e4m3")
    p = codec.encode(x)
    assert (p.tensors["elements"].numel(), p.tensors["scale"].tolist()) == (64, [119, 120])
    assert p.nbytes == 2 * (32 + 1)
    assert p.tensors["elements"][33:].tolist() == [0] * 31
    assert codec.decode(p, like=x).tolist() == x.tolist()


@pytest.mark.parametrize(
    "name, bits", [("mxfp8_e4m3", 8), ("mxfp8_e5m2", 8), ("mxint8", 8), ("mxfp6_e3m2", 6), ("mxfp6_e2m3", 6),
                   ("mxfp4_e2m1", 4)],
)
@pytest.mark.parametrize("block_size", [16, 32, 64])
def test_bytes_per_message(name, bits, block_size):
    # 4 * 16 * 8 * 8 = 4096 values; ceil(4096 / block) * (block * bits / 8 + 1)
    p = make_codec(name, (("block", block_size),)).encode(torch.randn(4, 16, 8, 8))
    blocks = 4096 // block_size
    assert (p.nbytes, p.meta_nbytes) == (blocks * (block_size * bits // 8 + 1), blocks)


@pytest.mark.parametrize(
    "name, args, message",
    [
        ("mxfp4_e2m1", (("block", 7),), "block: must be a positive multiple of 2, got 7"),
        ("mxfp6_e3m2", (("block", 6),), "block: must be a positive multiple of 4, got 6"),
        ("mxfp8_e4m3", (("block", 0),), "block: must be a positive multiple of 1, got 0"),
        ("mxint8", (("scale_rounding", "ceil"),), "scale_rounding: unknown name 'ceil'"),
        ("mxfp8_e5m2", (("rounding", "stochastc"),), "rounding: unknown name 'stochastc'; did you mean 'stochastic'"),
    ],
)
def test_bad_arguments(name, args, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(")):
        make_codec(name, args)
