"""topk's selection: the compiled CPU kernels and the torch path keep exactly torch.topk's set when
no magnitudes tie at the boundary, break ties alike (lowest positions), and leave the payload's
bytes as the plain formulas make them."""

import pytest
import torch

from quantizers import QUANTIZERS
from quantizers.compiled import topk as topk_cpu
from quantizers.topk import pack_bits, select, unpack_bits

SHAPES_AND_KEPT = [((128, 8192), 819), ((3, 1000), 10), ((5, 71), 7), ((2, 9), 9), ((4, 1), 1), ((6, 513), 200)]


def rows_without_ties(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * torch.rand(shape, generator=g)  # distinct magnitudes


def plain_topk(rows, m):
    positions = rows.abs().topk(m, dim=1).indices.sort(dim=1).values
    return rows.gather(1, positions), positions


@pytest.mark.parametrize("shape, m", SHAPES_AND_KEPT)
def test_both_paths_keep_exactly_the_largest_magnitudes(shape, m):
    rows = rows_without_ties(shape, seed=m)
    values, positions = plain_topk(rows, m)
    for got_values, got_positions in (topk_cpu.select(rows, m, "index"), select(rows, m)):
        assert torch.equal(got_positions.long(), positions) and torch.equal(got_values, values)


def test_a_row_whose_sample_misleads_still_gets_its_exact_set():
    # Every 17th element (the sampled ones) is large, 482 of 8192: too few for the 819 kept, so the
    # sample's floor leaves too few candidates and the whole row is counted instead.
    rows = rows_without_ties((2, 8192), seed=1) * 1e-3
    rows[:, ::17] += 1.0
    values, positions = plain_topk(rows, 819)
    got_values, got_positions = topk_cpu.select(rows, 819, "index")
    assert torch.equal(got_positions.long(), positions) and torch.equal(got_values, values)


def test_ties_at_the_boundary_go_to_the_lowest_positions_on_both_paths():
    rows = torch.tensor([[1.0, -3.0, 3.0, 0.5, 3.0, -3.0], [0.0, 0.0, -0.0, 2.0, 0.0, 0.0]])
    # Row 0: the three kept are -3 at 1 and the first two tying 3s (2, 4); row 1: 2, then zeros at 0, 1.
    for values, positions in (topk_cpu.select(rows, 3, "index"), select(rows, 3)):
        assert positions.tolist() == [[1, 2, 4], [0, 1, 3]]
        assert values.tolist() == [[-3.0, 3.0, 3.0], [0.0, 0.0, 2.0]]


def test_nan_ranks_above_inf_on_both_paths():
    rows = torch.tensor([[1.0, float("inf"), float("nan"), -2.0]])
    for values, positions in (topk_cpu.select(rows, 2, "index"), select(rows, 2)):
        assert positions.tolist() == [[1, 2]] and values[0, 0] == float("inf") and values[0, 1].isnan()


@pytest.mark.parametrize("shape, m", SHAPES_AND_KEPT)
def test_the_bitmap_and_its_spread_match_the_plain_packing(shape, m):
    rows = rows_without_ties(shape, seed=m)
    values, positions = plain_topk(rows, m)
    mask = torch.zeros(shape, dtype=torch.bool).scatter_(1, positions, True)
    got_values, bitmap = topk_cpu.select(rows, m, "bitmap")
    assert torch.equal(bitmap, pack_bits(mask)) and torch.equal(got_values, values)
    expected = torch.zeros(shape).masked_scatter_(unpack_bits(bitmap, shape[1]), values)
    assert torch.equal(topk_cpu.spread(bitmap, values, shape[1]), expected)


def test_spread_ignores_padding_bits_and_bits_past_the_kept():
    bitmap = torch.tensor([[0b11000000, 0b11111111]], dtype=torch.uint8)  # n = 9: bits 9..15 are padding
    assert topk_cpu.spread(bitmap, torch.tensor([[5.0, 6.0, 7.0]]), 9).tolist() == [[5, 6, 0, 0, 0, 0, 0, 0, 7]]
    assert topk_cpu.spread(bitmap, torch.tensor([[5.0, 6.0]]), 9).tolist() == [[5, 6, 0, 0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("k", [0.1, 0.01])
def test_the_payload_is_byte_for_byte_the_plain_formulas(k):
    x = torch.relu(rows_without_ties((64, 16, 16, 16), seed=3))
    codec = QUANTIZERS.get("topk")(k=k)
    rows = x.reshape(64, -1)
    values, positions = plain_topk(rows, codec.kept(rows.shape[1]))
    inner = QUANTIZERS.get("fp8_e4m3")().encode(values)
    p = codec.encode(x)
    assert torch.equal(p.tensors["values/q"].view(torch.uint8), inner.tensors["q"].view(torch.uint8))
    assert torch.equal(p.tensors["values/scale"], inner.tensors["scale"])
    if k == 0.1:
        assert torch.equal(p.tensors["bitmap"], pack_bits(torch.zeros_like(rows, dtype=torch.bool).scatter_(1, positions, True)))
    else:
        assert p.tensors["index"].dtype == torch.uint16 and torch.equal(p.tensors["index"].long(), positions)
    expected = torch.zeros_like(rows).scatter_(1, positions, QUANTIZERS.get("fp8_e4m3")().decode(inner, values))
    assert torch.equal(codec.decode(p, like=x), expected.reshape(x.shape))


def test_the_compiled_spread_refuses_a_bitmap_of_another_shape():
    with pytest.raises(ValueError, match="^bitmap: expected uint8 of shape \\(4, 8\\)"):
        topk_cpu.spread(torch.zeros(1, 1, dtype=torch.uint8), torch.ones(4, 3), 64)
