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
    full_only: ClassVar[bool] = True

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
SIGNALS = ("train", "val")


@POLICIES.register("loss_threshold")
@dataclass(frozen=True)
class LossThreshold:
    """PAPER.md's state machine, decided after each epoch from a loss L.

    With L_ref the loss of the last FULL epoch (`reference = "last_full"`, the paper's rule) or
    of the epoch before the last one (`reference = "previous"`, the consecutive-epochs variant):
    the next epoch is FULL when there is no L_ref yet or |L_ref - L| >= threshold; otherwise
    FORWARD after a FULL epoch and CACHED after a FORWARD or CACHED one. threshold = 0 is
    vanilla split learning.

    signal: which loss L is, "train" (the epoch's mean training loss, the paper's) or "val" (the
    server's loss on the validation slice held out of each client's shard, which does not fall
    when the server over-fits its cache; the run needs val_fraction > 0).
    max_cached: after this many CACHED epochs in a row the next epoch is FULL whatever the loss
    says (0: no limit, the paper's rule).
    """

    threshold: float = 0.02
    reference: str = "last_full"
    max_cached: int = 0
    signal: str = "train"
    # Each switched away from its default (the paper's rule) makes a gate family of its own.
    mechanisms: ClassVar[tuple[str, ...]] = ("reference", "signal", "max_cached")
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
        if not isinstance(self.max_cached, int) or isinstance(self.max_cached, bool) or self.max_cached < 0:
            raise UsageError(f"policy.max_cached: must be an integer >= 0 (0 = no limit), got {self.max_cached!r}")
        if self.signal not in SIGNALS:
            raise UsageError(f"policy.signal: must be one of {', '.join(SIGNALS)}, got {self.signal!r}")

    def decide(self, obs: Observation) -> Mode:
        if self.max_cached and obs.cached_run >= self.max_cached:
            return Mode.FULL
        loss, ref = self._losses(obs)
        if ref is None or loss is None or abs(ref - loss) >= self.threshold:
            return Mode.FULL
        return Mode.FORWARD if obs.last_mode == Mode.FULL else Mode.CACHED

    def _losses(self, obs: Observation) -> tuple[float | None, float | None]:
        """(L, L_ref) of the chosen signal and reference."""
        if self.signal == "val":
            losses, loss, last_full = obs.val_history, obs.val_loss, obs.ref_val_loss
        else:
            losses, loss, last_full = tuple(h[1] for h in obs.history), obs.train_loss, obs.ref_loss
        if self.reference == "last_full":
            return loss, last_full
        return loss, (losses[-2] if len(losses) >= 2 else None)
