"""Error feedback: the residual identity, exact in float32, and what the residual buys over time."""

import pytest
import torch

from quantizers import QUANTIZERS, reset
from quantizers.feedback import ErrorFeedback

SHAPE = (8, 4, 4, 4)


def messages(count: int, scale: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(SHAPE, generator=g) * scale for _ in range(count)]


@pytest.mark.parametrize("name, args, scale", [
    ("fp8_e4m3", {}, 1e-6),  # gradient-sized
    ("fp8_e5m2", {}, 1.0),
    ("topk", {"k": 0.1}, 1.0),
    ("bf16", {}, 1.0),
])
def test_sent_plus_residual_is_the_message_plus_the_previous_residual_exactly(name, args, scale):
    codec = ErrorFeedback(QUANTIZERS.get(name)(**args))
    previous = torch.zeros(SHAPE)
    for x in messages(4, scale):
        sent = codec.decode(codec.encode(x), like=x)
        residual = codec.residual(SHAPE)
        assert torch.equal(sent + residual, x + previous)
        assert residual.abs().max() > 0  # something was lost, so the identity is not 0 == 0
        previous = residual


def test_a_payload_that_holds_the_message_itself_is_not_overwritten_by_the_next_one():
    """fp32 sends v itself; the residual buffer, reused per message, must not be that v."""
    codec = ErrorFeedback(QUANTIZERS.get("fp32")())
    xs = messages(3, 1.0)
    payloads = [codec.encode(x) for x in xs]
    assert all(torch.equal(codec.decode(p, like=x), x) for p, x in zip(payloads, xs))
    assert torch.equal(codec.residual(SHAPE), torch.zeros(SHAPE))


def test_each_shape_keeps_its_own_residual_and_reset_clears_them():
    codec = ErrorFeedback(QUANTIZERS.get("topk")(k=0.1))
    full, short = torch.randn(SHAPE), torch.randn(3, 4, 4, 4)
    codec.encode(full)
    codec.encode(short)
    assert codec.residual(SHAPE).shape == SHAPE and codec.residual((3, 4, 4, 4)).shape == (3, 4, 4, 4)
    reset(codec)
    assert codec.residual(SHAPE) is None
    # After a reset the next message is encoded as the inner codec alone would encode it.
    plain = QUANTIZERS.get("topk")(k=0.1).encode(full)
    assert all(torch.equal(t, plain.tensors[k]) for k, t in codec.encode(full).tensors.items())


def test_what_topk_drops_is_sent_later():
    """A constant message sent 100 times: without feedback 90% of it never arrives; with feedback the
    running mean of what arrived approaches it (the error of the sum is one residual)."""
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    plain, fed = QUANTIZERS.get("topk")(k=0.1), ErrorFeedback(QUANTIZERS.get("topk")(k=0.1))
    sums = [torch.zeros(SHAPE), torch.zeros(SHAPE)]
    for _ in range(100):
        for total, codec in zip(sums, (plain, fed)):
            total += codec.decode(codec.encode(x), like=x)
    errors = [(total / 100 - x).abs().mean().item() for total in sums]
    assert errors[1] < errors[0] / 10
    assert torch.allclose(sums[1] + fed.residual(SHAPE), 100 * x, atol=1e-4)
