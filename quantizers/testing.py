"""Conformance kit for codecs: `check_codec(cls)` checks any codec class against the contract.

Each check instantiates `cls()` (default arguments) afresh (encoding and decoding on separate
instances, as sender and receiver do, except where one instance decodes twice) and raises
AssertionError naming the codec on failure. Inputs are standard-normal samples rescaled so that
max|x| is 1 (activations) or 1e-6 (cut-layer gradients). A codec may declare
`tolerance: ClassVar[float]`: the largest round-trip error allowed, as a fraction of max|x|
(`max|x - decode(encode(x))| <= tolerance * max|x|`), at both magnitudes; a codec that does not
declare it is held to DEFAULT_TOLERANCE. An ablation whose point is to lose small values (an
unscaled cast) declares `gradient_scale_exempt = True` and is checked at max|x| = 1 only.
"""

from __future__ import annotations

import itertools

import torch

from quantizers import Payload

DEFAULT_TOLERANCE = 0.5
SHAPES = ((2, 3, 4, 4), (5, 7), (1,))
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAGNITUDES = (1.0, 1e-6)  # max|x| of activations, and of cut-layer gradients (PAPER.md, "FP8")


def sample(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, device: str = "cpu",
           magnitude: float = 1.0) -> torch.Tensor:
    """A deterministic input: standard-normal samples scaled to max|x| = magnitude."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    return (x * (magnitude / x.abs().max())).to(device, dtype)


def check_round_trip(cls: type, device: str = "cpu") -> None:
    """decode(encode(x), like=x) has x's shape, dtype and device, within the codec's tolerance."""
    tolerance = getattr(cls, "tolerance", DEFAULT_TOLERANCE)
    magnitudes = MAGNITUDES[:1] if getattr(cls, "gradient_scale_exempt", False) else MAGNITUDES
    for shape, dtype, magnitude in itertools.product(SHAPES, DTYPES, magnitudes):
        x = sample(shape, dtype, device, magnitude)
        y = cls().decode(cls().encode(x), like=x)
        case = f"{cls.__name__} on {dtype} {tuple(shape)} with max|x| = {magnitude:g}"
        assert (y.shape, y.dtype, y.device) == (x.shape, x.dtype, x.device), (
            f"{case} on {x.device}: decoded {y.dtype} {tuple(y.shape)} on {y.device}"
        )
        error = (x.float() - y.float()).abs().max().item()
        assert error <= tolerance * x.abs().max().item(), (
            f"{case}: round-trip error {error:.3g} exceeds tolerance {tolerance} x max|x|"
        )


def check_payload(cls: type, device: str = "cpu") -> None:
    """The payload is a Payload of detached torch tensors; nbytes is their size in bytes, > 0."""
    x = sample(SHAPES[0], device=device).requires_grad_()
    p = cls().encode(x)
    assert isinstance(p, Payload), f"{cls.__name__}.encode returned {type(p).__name__}, not Payload"
    for name, t in p.tensors.items():
        assert isinstance(t, torch.Tensor), f"{cls.__name__} payload {name!r} is {type(t).__name__}"
        assert not t.requires_grad, f"{cls.__name__} payload {name!r} carries autograd history"
    expected = sum(t.numel() * t.element_size() for t in p.tensors.values())
    assert p.nbytes == expected > 0, f"{cls.__name__}: nbytes {p.nbytes}, tensors hold {expected}"


def check_input_unchanged(cls: type, device: str = "cpu") -> None:
    """encode leaves its input as it was."""
    x = sample(SHAPES[0], device=device)
    before = x.clone()
    cls().encode(x)
    assert torch.equal(x, before), f"{cls.__name__}.encode modified its input"


def check_zeros(cls: type, device: str = "cpu") -> None:
    """A zero tensor round-trips to exact zeros."""
    x = torch.zeros(SHAPES[0], device=device)
    y = cls().decode(cls().encode(x), like=x)
    assert torch.equal(y, x), f"{cls.__name__}: zeros decoded to {y.abs().max().item()} at most"


def check_decode_repeatable(cls: type, device: str = "cpu") -> None:
    """Decoding the same payload twice gives equal tensors."""
    x = sample(SHAPES[0], device=device)
    codec = cls()
    p = codec.encode(x)
    assert torch.equal(codec.decode(p, like=x), codec.decode(p, like=x)), (
        f"{cls.__name__}: decoding one payload twice gave different tensors"
    )


def check_search_space(cls: type, device: str = "cpu") -> None:
    """The search space names only the codec's arguments, and the codec accepts each choice and bound."""
    from quantizers import arguments

    names = [f.name for f in arguments(cls)]
    for name, space in getattr(cls, "search_space", {}).items():
        assert name in names, f"{cls.__name__}.search_space names {name!r}, not an argument ({names})"
        for value in space.get("choices") or (space["low"], space["high"]):
            cls(**{name: value}).encode(sample(SHAPES[0], device=device))


CHECKS = (check_round_trip, check_payload, check_input_unchanged, check_zeros, check_decode_repeatable,
          check_search_space)


def check_codec(cls: type, device: str = "cpu") -> None:
    """Run every check in CHECKS on the codec class `cls`."""
    for check in CHECKS:
        check(cls, device)
