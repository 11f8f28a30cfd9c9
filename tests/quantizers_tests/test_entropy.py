"""The zstd stage: lossless over any codec, and the bytes counted are the bytes that cross."""

import pytest
import torch
import zstandard

from bench.errors import UsageError
from quantizers import QUANTIZERS
from quantizers.entropy import LAYOUT, RAW_BELOW, EntropyCoded


def relu_activations() -> torch.Tensor:
    return torch.relu(torch.randn(64, 16, 8, 8, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name, args", [("fp32", {}), ("fp8_e4m3", {}), ("bf16", {}), ("topk", {"k": 0.01})])
def test_round_trip_is_the_inner_codec_s_exactly(name, args):
    x = relu_activations()
    inner = QUANTIZERS.get(name)(**args)
    coded = EntropyCoded(QUANTIZERS.get(name)(**args))
    assert torch.equal(coded.decode(coded.encode(x), like=x), inner.decode(inner.encode(x), like=x))


def test_counted_bytes_are_the_compressed_frames_the_raw_scale_and_the_layout():
    x = relu_activations()
    p = EntropyCoded(QUANTIZERS.get("fp8_e4m3")()).encode(x)
    q = QUANTIZERS.get("fp8_e4m3")().encode(x)
    frame = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(q.tensors["q"].view(torch.uint8).numpy())
    # q: one zstd frame; scale: 4 bytes, under RAW_BELOW, as they are;
    # layout: q is (code, 4, 64, 16, 8, 8) = 2 + 16 bytes, the 0-dim scale 2 bytes.
    assert p.tensors["q"].numpy().tobytes() == frame
    assert p.nbytes == len(frame) + 4 + 20
    assert p.meta_nbytes == 4 + 20
    assert p.tensors[LAYOUT].numel() == 20 and 4 < RAW_BELOW
    # Half of a ReLU output is zero: FP8's one byte per value shrinks by at least a third.
    assert len(frame) < 2 / 3 * x.numel()


def test_random_bytes_cost_their_size_and_a_few_bytes_of_frame():
    bits = torch.randint(0, 256, (4 * 4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x = bits.view(torch.float32)  # fp32 passes them through unchanged
    coded = EntropyCoded(QUANTIZERS.get("fp32")())
    p = coded.encode(x)
    assert 4 * 4096 < p.tensors["q"].numel() <= 4 * 4096 + 16
    assert torch.equal(coded.decode(p, like=x).view(torch.uint8), bits)


def test_level_is_checked():
    with pytest.raises(UsageError, match="^level: "):
        EntropyCoded(QUANTIZERS.get("fp32")(), level=0)
