"""Real values for int8, int4 and nvfp4: scales per tensor and per channel, codes, bytes."""

import math

import pytest
import torch

from bench.errors import UsageError
from quantizers import make_codec


def round_trip(name, x, **args):
    codec = make_codec(name, tuple(args.items()))
    p = codec.encode(x)
    return p, codec.decode(p, like=x)


def test_int8_per_channel_scales_follow_dim_1():
    # channel 0 max 127 -> scale 1; channel 1 max 0.5 -> 0.5 / 127; channel 2 all zeros -> 1.
    x = torch.zeros(2, 3, 1, 2)
    x[:, 0] = torch.tensor([[[127.0, -3.0]], [[1.0, 2.0]]])
    x[:, 1] = torch.tensor([[[0.5, -0.25]], [[0.0, 0.125]]])
    p, y = round_trip("int8", x, granularity="channel")
    assert p.tensors["scale"].tolist() == [1.0, torch.tensor(0.5 / 127).item(), 1.0]
    assert p.tensors["q"].view(2, 3, 2)[:, 0].tolist() == [[127, -3], [1, 2]]
    assert p.tensors["q"].view(2, 3, 2)[:, 1].tolist() == [[127, -64], [0, 32]]  # -63.5 and 31.75 round
    assert (p.nbytes, p.meta_nbytes) == (12 + 3 * 4, 12)
    assert torch.allclose(y, x, atol=0.5 / 127 / 2)


def test_int8_per_tensor_scale_is_one_float():
    p, y = round_trip("int8", torch.tensor([[254.0, -1.0], [3.0, 0.0]]))
    assert p.tensors["scale"].dim() == 0 and p.tensors["scale"].item() == 2.0
    assert p.tensors["q"].tolist() == [127, 0, 2, 0]  # -0.5 and 1.5 round half to even
    assert y.tolist() == [[254.0, 0.0], [4.0, 0.0]]


def test_int4_packs_two_values_per_byte_low_nibble_first():
    # max 7 -> scale 1; -3.5 rounds to -4 (even), 0.5 to 0. Nibbles 7, 0xC, 1, 0, 0x9 (+ a pad).
    p, y = round_trip("int4", torch.tensor([7.0, -3.5, 1.0, 0.5, -7.0]))
    assert p.tensors["q"].tolist() == [0xC7, 0x01, 0x09]
    assert y.tolist() == [7.0, -4.0, 1.0, 0.0, -7.0]
    assert p.nbytes == 3 + 4


def test_a_1d_tensor_has_one_channel():
    p, _ = round_trip("int4", torch.tensor([7.0, 1.0]), granularity="channel")
    assert p.tensors["scale"].tolist() == [1.0]


def test_a_nan_decodes_its_channel_to_nan():
    x = torch.tensor([[1.0, math.nan], [127.0, 3.0]])
    _, y = round_trip("int8", x, granularity="channel")
    assert torch.isnan(y[:, 1]).all() and y[:, 0].tolist() == [1.0, 127.0]


def test_bad_granularity():
    with pytest.raises(UsageError, match="^granularity: unknown name 'row' .*allowed: tensor, channel"):
        make_codec("int8", (("granularity", "row"),))


def test_nvfp4_two_level_scales():
    # max|x| = 10.5 = 448 * 6 * 2**-8: the tensor scale is 2**-8. Block 0 (max 10.5): 10.5 / 6 / 2**-8
    # = 448, E4M3 0x7E; step 448 * 2**-8 = 1.75: 10.5 -> 6 (0111), 3.5 -> 2 (0100), -1.75 -> -1 (1010).
    # Block 1 (max 0.375): 16 = 2**4, E4M3 0x58; step 1/16: 0.375 -> 6 (0111), 0.1875 -> 3 (0101).
    x = torch.tensor([10.5, 3.5, -1.75] + [0.0] * 13 + [0.375, 0.1875] + [0.0] * 14)
    p, y = round_trip("nvfp4", x)
    assert p.tensors["global"].item() == 2.0**-8
    assert p.tensors["scale"].tolist() == [0x7E, 0x58]
    assert p.tensors["elements"].tolist() == [0x47, 0x0A] + [0] * 6 + [0x57] + [0] * 7
    assert torch.equal(y, x)
    assert (p.nbytes, p.meta_nbytes) == (2 * 9 + 4, 2 + 4)


def test_nvfp4_nan_makes_everything_nan():
    _, y = round_trip("nvfp4", torch.tensor([1.0, math.inf, 2.0]))
    assert torch.isnan(y).all()


@pytest.mark.parametrize(
    "name, args, nbytes, meta",
    [
        # 4 * 16 * 8 * 8 = 4096 values, 16 channels
        ("int8", {}, 4096 + 4, 4),
        ("int8", {"granularity": "channel"}, 4096 + 16 * 4, 16 * 4),
        ("int4", {}, 2048 + 4, 4),
        ("int4", {"granularity": "channel"}, 2048 + 16 * 4, 16 * 4),
        ("nvfp4", {}, 256 * 9 + 4, 256 + 4),  # 256 blocks of 16: 8 element bytes + 1 scale byte
        ("fp16_scaled", {}, 2 * 4096 + 4, 4),
    ],
)
def test_bytes_per_message(name, args, nbytes, meta):
    p = make_codec(name, tuple(args.items())).encode(torch.randn(4, 16, 8, 8))
    assert (p.nbytes, p.meta_nbytes) == (nbytes, meta)


@pytest.mark.parametrize("name, numel, nbytes", [("int4", 5, 3 + 4), ("nvfp4", 17, 2 * 9 + 4)])
def test_bytes_of_a_ragged_tensor(name, numel, nbytes):
    assert make_codec(name).encode(torch.randn(numel)).nbytes == nbytes
