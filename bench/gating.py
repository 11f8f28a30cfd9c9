"""Feeding policies: one policy instance per group of clients, each with its own loss history.

Global gating is one group holding every client, decided from the epoch's mean loss over all of
them; per-client gating is one group per client, fed by that client's own loss.
"""

from __future__ import annotations

from policies import Mode, Observation


class PolicyState:
    """A policy with the history it has seen (modes, losses, the last FULL epoch's loss)."""

    def __init__(self, policy):
        self.policy = policy
        self.history: list[tuple[Mode, float]] = []
        self.ref_loss: float | None = None

    def decide(self, epoch: int) -> Mode:
        last_mode, last_loss = self.history[-1] if self.history else (None, None)
        obs = Observation(epoch, last_loss, self.ref_loss, last_mode, tuple(self.history))
        return Mode(self.policy.decide(obs))

    def record(self, mode: Mode, loss: float) -> None:
        self.history.append((mode, loss))
        if mode == Mode.FULL:
            self.ref_loss = loss


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

    def record(self, modes: list[Mode], losses: list[tuple[float, int]]) -> None:
        """losses: per client, (sum of per-sample losses, samples) of the epoch."""
        if self.per_client:
            for state, mode, (total, n) in zip(self.states, modes, losses):
                state.record(mode, total / n)
        else:
            self.states[0].record(modes[0], sum(t for t, _ in losses) / sum(n for _, n in losses))
