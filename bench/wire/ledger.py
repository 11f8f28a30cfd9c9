"""The Ledger: byte counts per client and kind, for the current epoch and the whole run.

Kinds (the metric names in DESIGN.md):
    up         activations, client -> server (codec `quant_up`, scales included)
    down       cut-layer gradients, server -> client (codec `quant_down`)
    labels     training labels, client -> server, as the smallest unsigned integer type that holds
               the class index (uint8 for CIFAR-10: 1 byte per sample)
    sync       client-network weights exchanged for averaging (fp32 parameters and batch-norm
               running statistics, each way)
    meta       the part of up and down that describes values rather than carries them (scales,
               indices, bitmaps: Payload.meta_nbytes); counted in up and down as well
    wire_up    every byte of the training frames client -> server: the above plus frame headers
    wire_down  every byte of the training frames server -> client
    exchanges  messages whose reply the client waits for (a FULL step's gradient, a weight fetch):
               the link model charges one round trip for each
"""

from __future__ import annotations

from collections import Counter

KINDS = ("up", "down", "labels", "sync", "meta", "wire_up", "wire_down", "exchanges")


class Ledger:
    """Byte counts per client and kind: the current epoch's and the run's totals."""

    def __init__(self, clients: int):
        self.epoch = [Counter() for _ in range(clients)]
        self.total = [Counter() for _ in range(clients)]

    def add(self, client: int, kind: str, nbytes: int) -> None:
        self.epoch[client][kind] += nbytes
        self.total[client][kind] += nbytes

    def close_epoch(self) -> list[Counter]:
        """The epoch's counts per client; the next epoch starts from zero."""
        done, self.epoch = self.epoch, [Counter() for _ in self.epoch]
        return done

    def run_total(self, kind: str) -> int:
        return sum(c[kind] for c in self.total)
