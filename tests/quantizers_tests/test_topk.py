"""topk: exact bytes for the bitmap and the index forms, worked out by hand, and exact positions."""

import pytest
import torch

from bench.errors import UsageError
from quantizers import QUANTIZERS
from quantizers.topk import pack_bits, unpack_bits


def topk(**args):
    return QUANTIZERS.get("topk")(**args)


@pytest.mark.parametrize(
    "shape, args, where, dtype, nbytes, meta",
    [
        # 100 of 1000 kept: an index list of uint16 (4 x 100 x 2 = 800) loses to the bitmap
        # (4 x 125 = 500); values 4 x 100 fp8 bytes + the 4-byte scale.
        ((4, 1000), {"k": 0.1}, "bitmap", torch.uint8, 400 + 4 + 500, 4 + 500),
        # 10 of 1000 kept: 4 x 10 x 2 = 80 index bytes beat the 500-byte bitmap.
        ((4, 1000), {"k": 0.01}, "index", torch.uint16, 40 + 4 + 80, 4 + 80),
        # 200 elements fit uint8 positions: 3 x 10 x 1 = 30 against a 3 x 25 = 75-byte bitmap.
        ((3, 200), {"k": 0.05}, "index", torch.uint8, 30 + 4 + 30, 4 + 30),
        # A tie (5 x 2 index bytes = 5 x 2 bitmap bytes) goes to the bitmap.
        ((5, 16), {"k": 0.125}, "bitmap", torch.uint8, 10 + 4 + 10, 4 + 10),
        # A cut-layer activation, 16 x 16 x 16 per sample: 410 of 4096 kept; fp16 values, no scale.
        ((64, 16, 16, 16), {"k": 0.1, "inner": "fp16"}, "bitmap", torch.uint8, 64 * 410 * 2 + 64 * 512, 64 * 512),
        # Beyond 65536 positions the index is uint32: 2 x 7 x 4 = 56 bytes against 2 x 8192.
        ((2, 65537), {"k": 1e-4}, "index", torch.uint32, 14 + 4 + 56, 4 + 56),
    ],
)
def test_bytes_are_exact_and_the_smaller_position_form_is_chosen(shape, args, where, dtype, nbytes, meta, codec_path):
    p = topk(**args).encode(torch.randn(shape, generator=torch.Generator().manual_seed(0)))
    assert where in p.tensors and p.tensors[where].dtype == dtype
    assert (p.nbytes, p.meta_nbytes) == (nbytes, meta)


@pytest.mark.parametrize("n, where", [(10, "bitmap"), (40, "index")])
def test_kept_values_return_at_their_positions_and_the_rest_is_zero(n, where, codec_path):
    x = torch.zeros(2, n)
    x[0, [1, 4, n - 1]] = torch.tensor([-3.0, 0.5, 2.0])
    x[1, [0, 7, 8]] = torch.tensor([1.0, -1.0, 0.25])
    x[:, 2] = 0.125  # smaller than every kept value: dropped
    codec = topk(k=3 / n, inner="fp32")  # 3 kept per sample: 3 bytes of index vs ceil(n / 8) of bitmap
    p = codec.encode(x)
    assert where in p.tensors
    expected = x.clone()
    expected[:, 2] = 0
    assert torch.equal(codec.decode(p, like=x), expected)


def test_bitmap_puts_the_first_element_in_the_most_significant_bit():
    mask = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 1, 1], [0, 1, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    packed = pack_bits(mask)
    assert packed.tolist() == [[129, 128], [64, 0]]
    assert torch.equal(unpack_bits(packed, 9), mask)


def test_a_one_dimensional_tensor_is_one_sample(codec_path):
    x = torch.tensor([0.1, -4.0, 0.2, 3.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0])
    codec = topk(k=0.2, inner="fp32")
    assert codec.decode(codec.encode(x), like=x).tolist() == [0, -4.0, 0, 3.0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "args, field",
    [({"k": 0}, "k"), ({"k": 1.5}, "k"), ({"k": "0.1"}, "k"), ({"inner": "nope"}, "inner"), ({"inner": "topk"}, "inner")],
)
def test_bad_arguments_name_themselves(args, field):
    with pytest.raises(UsageError, match=f"^{field}: "):
        topk(**args)


def test_topk_asks_the_registry_for_its_inner_codec_only(monkeypatch):
    """Catches: topk resolving every registered codec to check `inner`, which imports every
    installed plugin (and fails with a broken one that the run does not use)."""
    cls, get, asked = QUANTIZERS.get("topk"), QUANTIZERS.get, []
    monkeypatch.setattr(QUANTIZERS, "get", lambda name: asked.append(name) or get(name))
    cls(k=0.5, inner="fp16")
    assert asked == ["fp16"]


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 71])
def test_bitmaps_match_the_plain_bit_weights(n):
    mask = torch.rand(5, n, generator=torch.Generator().manual_seed(n)) < 0.4
    padded = torch.nn.functional.pad(mask, (0, -n % 8)).view(5, -1, 8).int()
    plain = (padded * torch.tensor([128, 64, 32, 16, 8, 4, 2, 1])).sum(-1).to(torch.uint8)
    assert torch.equal(pack_bits(mask), plain)
    assert torch.equal(unpack_bits(plain, n), mask)
