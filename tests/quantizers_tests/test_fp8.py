"""Real values for the built-in codecs: bytes on the wire, FP8 rounding, overflow and scaling."""

import math

import pytest
import torch

from quantizers import QUANTIZERS

INF, NAN = math.inf, math.nan
SCALED = ("fp8_e4m3", "fp8_e5m2")
UNSCALED = ("fp8_e4m3_unscaled", "fp8_e5m2_unscaled")


def round_trip(name: str, values) -> torch.Tensor:
    codec = QUANTIZERS.get(name)()
    x = torch.as_tensor(values, dtype=torch.float32)
    return codec.decode(codec.encode(x), like=x)


@pytest.mark.parametrize(
    "name, nbytes",
    [
        ("fp32", 524_288),  # 128*16*8*8 = 131_072 values x 4 bytes
        ("fp16", 262_144),
        ("bf16", 262_144),
        ("fp8_e4m3", 131_076),  # one byte per value + the float32 scale
        ("fp8_e5m2", 131_076),
        ("fp8_e4m3_unscaled", 131_072),
        ("fp8_e5m2_unscaled", 131_072),
    ],
)
def test_payload_bytes_of_a_vgg_activation(name, nbytes):
    assert QUANTIZERS.get(name)().encode(torch.randn(128, 16, 8, 8)).nbytes == nbytes


@pytest.mark.parametrize(
    "name, ties, evens",
    [
        # E4M3 near 1 is spaced 2**-3, subnormals 2**-9: each tie goes to the even mantissa.
        ("fp8_e4m3_unscaled", [1.0625, 1.1875, -1.0625, 2**-10, 3 * 2**-10], [1.0, 1.25, -1.0, 0.0, 2**-8]),
        # E5M2 near 1 is spaced 2**-2, subnormals 2**-16.
        ("fp8_e5m2_unscaled", [1.125, 1.375, -1.375, 2**-17, 3 * 2**-17], [1.0, 1.5, -1.5, 0.0, 2**-15]),
    ],
)
def test_fp8_rounds_ties_to_even(name, ties, evens):
    assert round_trip(name, ties).tolist() == evens


def test_e4m3_saturates_at_448_inf_included():
    assert round_trip("fp8_e4m3_unscaled", [448.0, 464.0, 500.0, 1e6, INF, -INF]).tolist() == [
        448.0, 448.0, 448.0, 448.0, 448.0, -448.0,
    ]


def test_e5m2_overflows_to_inf_from_the_tie_above_57344():
    # 61440 is halfway between 57344 (the max) and 65536, which does not exist: it rounds to inf.
    assert round_trip("fp8_e5m2_unscaled", [57344.0, 61439.0, 61440.0, 1e6, -1e6, -INF]).tolist() == [
        57344.0, 57344.0, INF, INF, -INF, -INF,
    ]


@pytest.mark.parametrize("name", SCALED + UNSCALED)
def test_nan_stays_nan(name):
    assert math.isnan(round_trip(name, [1.0, NAN, -2.0])[1].item())


@pytest.mark.parametrize("name, scale", [("fp8_e4m3", 896 / 448), ("fp8_e5m2", 896 / 57344)])
def test_scale_maps_max_abs_onto_the_largest_finite_value(name, scale):
    p = QUANTIZERS.get(name)().encode(torch.tensor([-896.0, 1.0, 2.0]))
    assert p.tensors["scale"].dtype == torch.float32
    assert p.tensors["scale"].dim() == 0
    assert p.tensors["scale"].item() == scale
    assert p.tensors["q"].float().tolist() == [-896 / scale, 1 / scale, 2 / scale]


@pytest.mark.parametrize("name", SCALED)
def test_scale_of_zeros_is_one(name):
    assert QUANTIZERS.get(name)().encode(torch.zeros(3)).tensors["scale"].item() == 1.0


def gradient() -> torch.Tensor:
    """Cut-layer gradients are about 1e-6 (PAPER.md, "FP8")."""
    return torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 1e-6


@pytest.mark.parametrize("name, relative_error", [("fp8_e4m3", 2**-4), ("fp8_e5m2", 2**-3)])
def test_scaled_fp8_keeps_small_gradients(name, relative_error):
    g = gradient()
    y = round_trip(name, g)
    assert torch.all(torch.sign(y) == torch.sign(g))  # none flushed to zero
    assert torch.all((y - g).abs() <= relative_error * g.abs())


@pytest.mark.parametrize("name", UNSCALED)
def test_unscaled_fp8_flushes_small_gradients_to_zero(name):
    assert torch.count_nonzero(round_trip(name, gradient())) == 0
