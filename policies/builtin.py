"""Built-in gating policies: always (vanilla split learning), periodic, loss_threshold (PAPER.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench.errors import UsageError
from policies import POLICIES, Mode, Observation


@POLICIES.register("always")
@dataclass(frozen=True)
class Always:
    """FULL every epoch: vanilla split learning, the baseline of every reduction factor."""

    search_space: ClassVar[dict] = {}

    def decide(self, obs: Observation) -> Mode:
        return Mode.FULL


@POLICIES.register("periodic")
@dataclass(frozen=True)
class Periodic:
    """Epoch e (0-based) is FULL when e % period == 0, FORWARD when e % period == 1, else CACHED.

    period = 1 is `always`; period = 2 alternates FULL and FORWARD.
    """

    period: int = 3
    search_space: ClassVar[dict] = {"period": {"low": 1, "high": 20, "log": False}}

    def __post_init__(self):
        if not isinstance(self.period, int) or self.period < 1:
            raise UsageError(f"policy.period: must be an integer >= 1, got {self.period!r}")

    def decide(self, obs: Observation) -> Mode:
        phase = obs.epoch % self.period
        if phase == 0:
            return Mode.FULL
        return Mode.FORWARD if phase == 1 else Mode.CACHED


REFERENCES = ("last_full", "previous")


@POLICIES.register("loss_threshold")
@dataclass(frozen=True)
class LossThreshold:
    """PAPER.md's state machine, decided after each epoch from its mean training loss L.

    With L_ref the loss of the last FULL epoch (`reference = "last_full"`, the paper's rule) or
    of the epoch before the last one (`reference = "previous"`, the consecutive-epochs variant):
    the next epoch is FULL when there is no L_ref yet or |L_ref - L| >= threshold; otherwise
    FORWARD after a FULL epoch and CACHED after a FORWARD or CACHED one. threshold = 0 is
    vanilla split learning.
    """

    threshold: float = 0.02
    reference: str = "last_full"
    search_space: ClassVar[dict] = {
        "threshold": {"low": 1e-3, "high": 0.5, "log": True},
        "reference": {"choices": list(REFERENCES)},
    }

    def __post_init__(self):
        if not isinstance(self.threshold, (int, float)) or not self.threshold >= 0:
            raise UsageError(f"policy.threshold: must be a number >= 0, got {self.threshold!r}")
        if self.reference not in REFERENCES:
            raise UsageError(
                f"policy.reference: must be one of {', '.join(REFERENCES)}, got {self.reference!r}"
            )

    def decide(self, obs: Observation) -> Mode:
        ref = self._reference(obs)
        if ref is None or obs.train_loss is None or abs(ref - obs.train_loss) >= self.threshold:
            return Mode.FULL
        return Mode.FORWARD if obs.last_mode == Mode.FULL else Mode.CACHED

    def _reference(self, obs: Observation) -> float | None:
        if self.reference == "last_full":
            return obs.ref_loss
        return obs.history[-2][1] if len(obs.history) >= 2 else None
