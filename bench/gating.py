"""Feeding policies: one policy instance per group of clients, each with its own loss history.

Global gating is one group holding every client, decided from the epoch's mean loss over all of
them; per-client gating is one group per client, fed by that client's own loss. Validation losses
(when the run holds a slice out) are fed the same way, weighted by validation samples.
"""

from __future__ import annotations

from policies import Mode, Observation


class PolicyState:
    """A policy with the history it has seen (modes, losses, validation losses, the last FULL
    epoch's losses, the current run of CACHED epochs)."""

    def __init__(self, policy):
        self.policy = policy
        self.history: list[tuple[Mode, float]] = []
        self.val_history: list[float | None] = []
        self.ref_loss: float | None = None
        self.ref_val_loss: float | None = None
        self.cached_run = 0

    def decide(self, epoch: int) -> Mode:
        last_mode, last_loss = self.history[-1] if self.history else (None, None)
        obs = Observation(
            epoch, last_loss, self.ref_loss, last_mode, tuple(self.history),
            val_loss=self.val_history[-1] if self.val_history else None,
            ref_val_loss=self.ref_val_loss, val_history=tuple(self.val_history), cached_run=self.cached_run,
        )
        return Mode(self.policy.decide(obs))

    def record(self, mode: Mode, loss: float, val_loss: float | None = None) -> None:
        self.history.append((mode, loss))
        self.val_history.append(val_loss)
        self.cached_run = self.cached_run + 1 if mode == Mode.CACHED else 0
        if mode == Mode.FULL:
            self.ref_loss, self.ref_val_loss = loss, val_loss


class Gate:
    """Decides every client's mode for an epoch and learns from the epoch's losses."""

    def __init__(self, make_policy, clients: int, per_client: bool):
        self.per_client = per_client
        self.states = [PolicyState(make_policy()) for _ in range(clients if per_client else 1)]
        self.clients = clients

    def decide(self, epoch: int) -> list[Mode]:
        if self.per_client:
            return [s.decide(epoch) for s in self.states]
        return [self.states[0].decide(epoch)] * self.clients

    def record(self, modes: list[Mode], losses: list[tuple[float, int]],
               val_losses: list[tuple[float, int]] | None = None) -> None:
        """losses, val_losses: per client, (sum of per-sample losses, samples) of the epoch's
        training and of the validation slice after it (None: no slice held out)."""
        if self.per_client:
            vals = [_mean([v]) for v in val_losses] if val_losses else [None] * len(losses)
            for state, mode, loss, val in zip(self.states, modes, losses, vals):
                state.record(mode, _mean([loss]), val)
        else:
            self.states[0].record(modes[0], _mean(losses), _mean(val_losses) if val_losses else None)


def _mean(sums: list[tuple[float, int]]) -> float:
    return sum(t for t, _ in sums) / sum(n for _, n in sums)
