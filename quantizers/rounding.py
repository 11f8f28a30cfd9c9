"""Rounding: the arguments every float, MX and integer codec shares, and their seeded generator.

rounding = "nearest" rounds to the nearest representable value, ties to even. "stochastic" rounds
up with probability equal to the distance from the value below, in steps, so that a value's
encodings average to it. The draws come from a torch.Generator per codec instance and device,
seeded with `seed`: a run repeats its draws exactly. A run's config sets `seed` from the run's
seed unless given (2 * seed for quant_up, 2 * seed + 1 for quant_down, so the two directions draw
apart; logged as quant_up.seed and quant_down.seed); every client's codec of one direction draws
the same sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from bench.errors import UsageError
from bench.registry import unknown_name_message

ROUNDINGS = ("nearest", "stochastic")


def check_choice(name: str, value: Any, allowed: tuple) -> None:
    """A UsageError `name: unknown name ...` unless value is one of `allowed`."""
    if value not in allowed:
        raise UsageError(unknown_name_message(name, str(value), [str(a) for a in allowed]))


def check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UsageError(f"{name}: must be an integer >= {low}, got {value!r}")


@dataclass
class Rounding:
    rounding: str = "nearest"
    seed: int = 0
    _generators: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # Sweeps search `rounding` only where a spec asks (sweep.search.codec_ranges), so that listing
    # a codec does not double its share of the trials.
    search_space: ClassVar[dict] = {}

    def __post_init__(self):
        check_choice("rounding", self.rounding, ROUNDINGS)
        check_int("seed", self.seed, 0)

    def generator(self, device: torch.device) -> torch.Generator | None:
        """None for nearest rounding; else this instance's generator on `device`."""
        if self.rounding == "nearest":
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device).manual_seed(self.seed)
        return self._generators[device]
