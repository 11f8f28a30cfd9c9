"""Gating policies: which mode the next epoch runs in (PAPER.md's FULL / FORWARD / CACHED).

Contract: a policy is a small dataclass whose fields are its parameters, validated in
__post_init__ (a bad value raises UsageError naming `policy.<field>`).
    decide(obs: Observation) -> Mode   # the only required method; pure, no torch needed
    search_space: ClassVar[dict]       # plain data read by the sweep: per field either
                                       # {"low", "high", "log"} (int when low/high are ints)
                                       # or {"choices": [...]}
    mechanisms: ClassVar[tuple[str, ...]]  # optional: the fields that switch on a mechanism beyond
                                       # the paper's form of the policy, each off at its default;
                                       # the report names a setting's gate family by them
    full_only: ClassVar[bool]          # optional: True when decide answers FULL whatever it sees,
                                       # so the cache options cannot act (a sweep keys them away)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from bench.registry import Registry


class Mode(enum.IntEnum):
    """Logged as the `mode` metric: 0 = FULL (A), 1 = FORWARD (B), 2 = CACHED (C)."""

    FULL = 0
    FORWARD = 1
    CACHED = 2


@dataclass(frozen=True)
class Observation:
    """What a policy sees before epoch `epoch` (0-based).

    train_loss: mean training loss of the last epoch (None before the first).
    ref_loss: mean training loss of the last FULL epoch (None before any).
    last_mode: mode of the last epoch (None before the first).
    history: (mode, train_loss) of every past epoch, oldest first.
    val_loss: the server's loss on the held-out validation slice after the last epoch (None when
        the run holds none out, see RunConfig.val_fraction, or before the first epoch).
    ref_val_loss: val_loss after the last FULL epoch (None before any).
    val_history: val_loss after every past epoch, oldest first (aligned with history).
    cached_run: how many epochs in a row, ending with the last one, were CACHED.
    """

    epoch: int
    train_loss: float | None = None
    ref_loss: float | None = None
    last_mode: Mode | None = None
    history: tuple[tuple[Mode, float], ...] = field(default=())
    val_loss: float | None = None
    ref_val_loss: float | None = None
    val_history: tuple[float | None, ...] = field(default=())
    cached_run: int = 0


class GatingPolicy(Protocol):
    search_space: ClassVar[dict]

    def decide(self, obs: Observation) -> Mode: ...


POLICIES: Registry[type] = Registry("policy", "splitbench.policies", built_ins=("policies.builtin",),
                                     plural="policies")
