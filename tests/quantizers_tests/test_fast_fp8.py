"""The fast scaled-FP8 paths give, bit for bit, what the plain formulas give."""

import functools
import math

import pytest
import torch

from quantizers import QUANTIZERS
from quantizers.lookup import TABLE_MIN, scaled_values

FORMATS = {"fp8_e4m3": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


def reference(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q, scale, decoded) by the plain formulas: max|x| / max_finite, x / scale, q.float() * scale."""
    x = x.float()
    scale = x.abs().max() / torch.finfo(dtype).max
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = (x / scale).to(dtype)
    return q, scale, q.float() * scale


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


@functools.cache
def inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    act = torch.relu(torch.randn(64, 16, 16, 16, generator=g))  # above TABLE_MIN: the table path, uncompiled
    with_nan, with_inf = act.clone(), act.clone()
    with_nan[3, 2, 1, 0] = math.nan
    with_inf[0, 0, 0, 5] = -math.inf
    return {
        "activation": act,
        "gradient": torch.randn(64, 16, 16, 16, generator=g) * 1e-6,
        "bf16": torch.randn(64, 16, 16, 16, generator=g).bfloat16(),
        "odd": torch.randn(TABLE_MIN + 1, generator=g),
        "small": torch.randn(5, 7, generator=g),
        "zeros": torch.zeros(64, 4096),
        "negative_zeros": -torch.zeros(64, 4096),
        "nan": with_nan,
        "inf": with_inf,
    }


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("case", inputs())
def test_encode_and_decode_match_the_plain_formulas_bit_for_bit(name, case, codec_path):
    x = inputs()[case]
    q, scale, decoded = reference(x, FORMATS[name])
    codec = QUANTIZERS.get(name)()
    p = codec.encode(x)
    assert same_bits(p.tensors["q"], q) and same_bits(p.tensors["scale"], scale)
    assert same_bits(codec.decode(p, like=x.float()), decoded.reshape(x.shape))


@pytest.mark.parametrize("dtype", FORMATS.values())
def test_the_table_holds_every_byte_pair(dtype, codec_path):
    every = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.uint8).view(dtype)  # NaNs included
    assert every.numel() >= TABLE_MIN
    scale = torch.tensor(3.0e-7)
    assert same_bits(scaled_values(every, scale), every.float() * scale)
