"""The fast minifloat paths give, bit for bit, what the plain formulas give: nearest codes through
tables and FP8 casts against the arithmetic rounding, packed decoding against one code at a time,
and the MX and nvfp4 codecs against their definitions written out with those plain pieces."""

import functools
import math

import pytest
import torch

from quantizers import elements, make_codec
from quantizers.compiled import blocks

SUB_BYTE = (elements.E2M1, elements.E2M3, elements.E3M2)


@functools.cache
def awkward_values() -> torch.Tensor:
    """Random float32 bit patterns (every exponent, float32 subnormals, inf) and, for each format,
    its values, its midpoints (ties) and their float32 neighbours, beyond max, +-0, gradient-sized
    values; both signs. No NaN."""
    g = torch.Generator().manual_seed(0)
    bits = torch.randint(-2**31, 2**31 - 1, (200_000,), generator=g, dtype=torch.int64).int()
    special = [0.0, math.inf, 1e-45, 1e-40, 2.0**-126, 1e-6, 3e-7, 1e38]
    for fmt in SUB_BYTE:
        grid = torch.tensor(sorted({fmt.value(c) for c in range(2 ** (fmt.bits - 1))}))
        mids = (grid[:-1] + grid[1:]) / 2
        for v in (grid, mids, torch.tensor([fmt.max * 1.01, 2.0 ** (fmt.emax + 1)])):
            special += v.tolist() + torch.nextafter(v, v + 1).tolist() + torch.nextafter(v, v - 1).tolist()
    magnitudes = torch.cat([bits.view(torch.float32), torch.tensor(special),
                            torch.randn(50_000, generator=g) * 1e-6, torch.rand(50_000, generator=g) * 8])
    values = torch.cat([magnitudes, -magnitudes])
    return values[~values.isnan()]


@pytest.mark.parametrize("fmt", SUB_BYTE)
def test_nearest_codes_match_the_arithmetic_rounding(fmt):
    x = awkward_values()
    assert torch.equal(elements.encode(x.clone(), fmt, None), elements.grid_codes(x, fmt, None))


@pytest.mark.parametrize("fmt", [*SUB_BYTE, elements.E4M3, elements.E5M2])
@pytest.mark.parametrize("count", [4800, 24])
def test_packed_decoding_matches_code_by_code(fmt, count):
    codes = torch.randint(0, 2**fmt.bits, (count,), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    packed = elements.pack(codes, fmt.bits)
    plain = elements.decode(elements.unpack(packed, fmt.bits), fmt)
    assert torch.equal(elements.decode_packed(packed, fmt).view(torch.int32), plain.view(torch.int32))  # NaN bits too


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp8_e5m2", "mxint8"])
def test_an_odd_count_of_one_byte_elements_decodes(name, codec_path):
    x = torch.randn(3, 7, generator=torch.Generator().manual_seed(3))
    codec = make_codec(name, (("block", 3),))
    tensors, decoded = plain_mx(codec, x)
    p = codec.encode(x)
    assert all(same_bits(p.tensors[k], tensors[k]) for k in tensors)
    assert same_bits(codec.decode(p, like=x), decoded)


def plain_pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Little-endian packing, one code at a time."""
    codes = codes.long().view(-1, 8 // bits if bits != 6 else 4)
    word = sum(codes[:, i] << (bits * i) for i in range(codes.shape[1]))
    return torch.stack([(word >> s) & 0xFF for s in range(0, codes.shape[1] * bits, 8)], dim=1).to(torch.uint8).view(-1)


def plain_mx(codec, x: torch.Tensor) -> tuple[dict, torch.Tensor]:
    flat = x.float().reshape(-1)
    blocks = torch.nn.functional.pad(flat, (0, -flat.numel() % codec.block)).view(-1, codec.block)
    amax = blocks.abs().amax(dim=1)
    exponent = codec.shared_exponent(amax)
    finite = amax.isfinite()
    scaled = torch.where(finite[:, None], blocks, 0.0) * elements.ldexp(1.0, -exponent, wide=True)[:, None]
    if codec.bits == 8 and not hasattr(codec, "fmt"):  # mxint8
        codes = (scaled * 64).round().clamp(-127, 127).to(torch.int8).view(torch.uint8).view(-1)
        values = codes.view(torch.int8).float() / 64
    elif codec.fmt in elements.FP8_DTYPES:
        codes = scaled.clamp(-codec.max, codec.max).to(elements.FP8_DTYPES[codec.fmt]).view(torch.uint8).view(-1)
        values = elements.decode(codes, codec.fmt)
    else:
        codes = elements.grid_codes(scaled.view(-1), codec.fmt, None)
        values = elements.decode(codes, codec.fmt)
    factor = torch.where(finite, elements.ldexp(1.0, exponent, wide=True), torch.nan)
    decoded = (values.view(len(blocks), -1) * factor[:, None]).view(-1)[: x.numel()].view(x.shape)
    scale = torch.where(finite, exponent + 127, 255).to(torch.uint8)
    return {"elements": plain_pack(codes, codec.bits), "scale": scale}, decoded


def plain_nvfp4(x: torch.Tensor) -> tuple[dict, torch.Tensor]:
    flat = x.float().reshape(-1)
    blocks = torch.nn.functional.pad(flat, (0, -flat.numel() % 16)).view(-1, 16)
    block_amax = blocks.abs().amax(dim=1)
    amax = block_amax.max()
    tensor_scale = torch.where(amax > 0, amax / (448 * 6), 1.0)
    tensor_scale = torch.where(amax.isfinite(), tensor_scale, torch.nan)
    block_scale = (block_amax / 6 / tensor_scale).clamp(max=448).to(torch.float8_e4m3fn)
    step = block_scale.float()[:, None] * tensor_scale
    codes = elements.grid_codes(torch.where(step > 0, blocks / step, 0.0).view(-1), elements.E2M1, None)
    decoded = (elements.decode(codes, elements.E2M1).view(-1, 16) * step).view(-1)[: x.numel()].view(x.shape)
    return {"elements": plain_pack(codes, 4), "scale": block_scale.view(torch.uint8), "global": tensor_scale}, decoded


@functools.cache
def messages() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    act = torch.relu(torch.randn(8, 16, 8, 8, generator=g))
    grad = torch.randn(8, 16, 8, 8, generator=g) * 1e-6
    grad.view(-1)[::7] = -0.0
    mixed = torch.randn(8, 16, 8, 8, generator=g) * torch.exp2(torch.randint(-140, 60, (8, 16, 8, 8), generator=g))
    special = act.clone()
    special.view(-1)[5] = math.nan
    special.view(-1)[100] = -math.inf
    special.view(-1)[200:264] = 0.0  # whole zero blocks
    special.view(-1)[300:310] = -1e-42  # tiny and negative
    return {"activation": act, "gradient": grad, "mixed": mixed, "special": special,
            "ragged": torch.randn(3, 37, generator=g)}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


@pytest.mark.parametrize("fmt", [*SUB_BYTE, elements.E4M3, elements.E5M2])
def test_the_compiled_nearest_codes_match_the_torch_ones(fmt):
    x = awkward_values()
    if fmt in elements.FP8_DTYPES:  # beyond inf the cast saturates too; -0.0 keeps its sign in both
        x = torch.cat([x, torch.tensor([-0.0, -1e-45, -1e-30])])
    assert torch.equal(blocks.minifloat_codes(x.contiguous(), fmt), elements.encode(x.clone(), fmt, None))


@pytest.mark.parametrize("name", ["mxfp4_e2m1", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8", "nvfp4"])
@pytest.mark.parametrize("case", messages())
def test_mx_and_nvfp4_match_their_plain_definitions(name, case, codec_path):
    x = messages()[case]
    codec = make_codec(name)
    tensors, decoded = plain_nvfp4(x) if name == "nvfp4" else plain_mx(codec, x)
    p = codec.encode(x)
    assert p.tensors.keys() == tensors.keys()
    assert all(same_bits(p.tensors[k], tensors[k]) for k in tensors), name
    assert same_bits(codec.decode(p, like=x), decoded)


@pytest.mark.parametrize("name", ["mxfp4_e2m1", "mxfp6_e2m3", "mxfp8_e4m3", "mxint8"])
@pytest.mark.parametrize("case", ["mixed", "special"])
def test_the_rounded_up_scale_matches_its_plain_definition(name, case, codec_path):
    x = messages()[case]
    codec = make_codec(name, (("scale_rounding", "up"),))
    tensors, decoded = plain_mx(codec, x)
    p = codec.encode(x)
    assert all(same_bits(p.tensors[k], tensors[k]) for k in tensors)
    assert same_bits(codec.decode(p, like=x), decoded)


@pytest.mark.parametrize("name, block", [("mxfp4_e2m1", 2), ("mxfp4_e2m1", 16), ("mxfp6_e3m2", 4), ("mxfp6_e2m3", 64),
                                         ("mxfp8_e4m3", 7), ("mxint8", 16), ("mxfp8_e5m2", 64)])
def test_other_block_sizes_and_strided_inputs_match_the_plain_definitions(name, block, codec_path):
    x = messages()["mixed"].transpose(1, 3)[:, ::2]  # neither contiguous nor a multiple of the block
    codec = make_codec(name, (("block", block),))
    tensors, decoded = plain_mx(codec, x)
    p = codec.encode(x)
    assert all(same_bits(p.tensors[k], tensors[k]) for k in tensors)
    assert same_bits(codec.decode(p, like=x), decoded)


def test_the_compiled_decoder_refuses_codes_that_do_not_fill_their_blocks():
    with pytest.raises(ValueError, match="do not fill"):
        blocks.decode_blocks(torch.zeros(32, dtype=torch.uint8), 4, torch.zeros(16), torch.ones(3))


def test_nvfp4_block_scales_round_as_torch_does_at_every_e4m3_midpoint():
    """Block maxima whose ratio amax / 6 / tensor_scale lands on or an ulp or two beside each E4M3
    midpoint: there the order of the roundings decides the code."""
    grid = torch.tensor([elements.E4M3.value(c) for c in range(127)])
    mids = (grid[:-1] + grid[1:]) / 2
    for tensor_scale in map(torch.tensor, [0.1, 1 / 3, 0.7, 3e-7]):
        amax = (mids * 6 * tensor_scale).float()
        for _ in range(3):
            amax = torch.cat([amax, torch.nextafter(amax, amax + 1), torch.nextafter(amax, amax - 1)]).unique()
        codes, steps = blocks.block_steps(amax, tensor_scale)
        expected = (amax / 6 / tensor_scale).clamp(max=448).to(torch.float8_e4m3fn)
        assert torch.equal(codes, expected.view(torch.uint8))
        assert same_bits(steps, expected.float() * tensor_scale)
