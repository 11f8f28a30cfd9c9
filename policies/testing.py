"""Conformance kit for gating policies: every registered policy must pass `check_policy`.

A third-party policy is tested by the same parametrised test as the built-ins, without new code.
Policies are driven through bench.gating, the engine's own bookkeeping of modes and losses, so a
policy behaves here exactly as in a run.
"""

from __future__ import annotations

import dataclasses
import random

from bench.gating import Gate
from policies import Mode


def run_policy(policy, losses: list[float]) -> list[Mode]:
    """Drive `policy` through len(losses) epochs where epoch e ends with mean loss losses[e]."""
    gate = Gate(lambda: policy, clients=1, per_client=False)
    modes = []
    for epoch, loss in enumerate(losses):
        (mode,) = gate.decide(epoch)
        modes.append(mode)
        gate.record([mode], [(loss, 1)])
    return modes


def check_policy(cls) -> None:
    """The contract every policy keeps; raises AssertionError on the first broken promise."""
    assert dataclasses.is_dataclass(cls), f"{cls.__name__} must be a dataclass (its fields are its parameters)"
    policy = cls()  # defaults must be valid
    space = getattr(cls, "search_space", None)
    assert isinstance(space, dict), "search_space must be a dict"
    fields = {f.name for f in dataclasses.fields(cls)}
    for name, spec in space.items():
        assert name in fields, f"search_space names {name!r}, which is not a field"
        assert ("choices" in spec) != ("low" in spec and "high" in spec), (
            f"search_space[{name!r}] needs either choices or low/high"
        )
        if "low" in spec:
            assert spec["low"] <= spec["high"], f"search_space[{name!r}]: low > high"
    for name in getattr(cls, "mechanisms", ()):
        assert name in fields, f"mechanisms names {name!r}, which is not a field"
    rng = random.Random(0)
    losses = [2.3 * 0.97**e + rng.uniform(-0.05, 0.05) for e in range(30)]
    modes = run_policy(policy, losses)
    assert all(isinstance(m, Mode) for m in modes), "decide must return a Mode"
    assert modes[0] == Mode.FULL, "the first epoch must be FULL: nothing is cached yet"
    assert modes == run_policy(cls(), losses), "decide must be pure: same observations, same modes"
    if getattr(cls, "full_only", False):  # a sweep trains its settings without the cache options
        flat = [2.3] * 30  # a loss that stalls: what makes a gate leave FULL
        assert set(modes) | set(run_policy(policy, flat)) == {Mode.FULL}, "full_only, yet decide left FULL"
