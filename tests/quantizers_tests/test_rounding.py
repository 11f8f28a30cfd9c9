"""Stochastic rounding: unbiased in expectation, reproducible from its seed; fp16_scaled keeps
gradient-sized values out of FP16's subnormals."""

import pytest
import torch

from quantizers import QUANTIZERS, arguments, make_codec

STOCHASTIC = [n for n in QUANTIZERS.names() if "rounding" in [f.name for f in arguments(QUANTIZERS.get(n))]]
COPIES = 16 * 1024
VALUE = torch.tensor(0.3).item()  # 0.0100110011... in binary: between two grid points of every codec


def decoded(name: str, rounding: str) -> torch.Tensor:
    """The decoded copies of VALUE, in a tensor whose every block of 16 starts with 1.0, so that
    every block and tensor scale is the same."""
    x = torch.full((COPIES,), VALUE)
    x[::16] = 1.0
    codec = make_codec(name, (("rounding", rounding),))
    return codec.decode(codec.encode(x), like=x)[x != 1.0].double()


def test_every_float_mx_and_integer_codec_rounds_stochastically():
    # fp32 does not round; topk is a sparsifier whose kept values round as its inner codec does.
    assert set(QUANTIZERS.names()) - set(STOCHASTIC) == {"fp32", "topk"}


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_rounding_is_unbiased(name):
    stochastic = decoded(name, "stochastic")
    below, above = stochastic.unique().tolist()
    assert below < VALUE < above
    step = above - below
    nearest = decoded(name, "nearest")
    assert abs(nearest.mean().item() - VALUE) > 0.05 * step  # the test can tell nearest rounding apart
    # The mean of 15360 draws, each `step` apart, has a standard error below 0.004 step.
    assert abs(stochastic.mean().item() - VALUE) < 0.02 * step


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_rounding_repeats_with_its_seed(name):
    x = torch.randn(4, 8, 4, 4)
    draws = [make_codec(name, (("rounding", "stochastic"), ("seed", seed))).encode(x) for seed in (1, 1, 2)]
    same, other = [[torch.equal(a, b) for a, b in zip(draws[0].tensors.values(), d.tensors.values())]
                   for d in draws[1:]]
    assert all(same) and not all(other)


def gradient() -> torch.Tensor:
    """Cut-layer gradients are about 1e-6 (PAPER.md, "FP8")."""
    return torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 1e-6


def test_fp16_scaled_keeps_gradients_that_plain_fp16_blurs():
    g = gradient()
    relative = {name: ((make_codec(name).decode(make_codec(name).encode(g), g) - g).abs() / g.abs())
                for name in ("fp16", "fp16_scaled")}
    assert torch.all(relative["fp16_scaled"] <= 2.0**-11)
    assert relative["fp16"].median() > 2.0**-11  # most of them are FP16 subnormals


def test_fp16_scaled_uses_a_power_of_two():
    # max|x| = 3e-6: floor(log2) = -19, so the scale is 2**(-19 - 14) and 3e-6 / scale lies in [2**14, 2**15).
    p = make_codec("fp16_scaled").encode(torch.tensor([3e-6, -1e-6]))
    assert p.tensors["scale"].item() == 2.0**-33
