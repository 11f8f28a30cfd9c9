"""The Ledger: byte counts per client and kind, for the current epoch and the whole run.

Kinds (the byte metrics docs/metrics.md lists add them up):
    up         activations, client -> server (codec `quant_up`, scales included); with per-sample
               refresh also the map of which samples of a batch were sent, 1 bit per sample
               (ceil(B / 8) bytes per batch)
    down       cut-layer gradients, server -> client (codec `quant_down`)
    labels     training labels, client -> server, as the smallest unsigned integer type that holds
               the class index (uint8 for CIFAR-10: 1 byte per sample)
    val        activations of the validation slice, client -> server (codec `quant_up`), sent after
               each FULL or FORWARD epoch when the run holds a slice out (RunConfig.val_fraction)
    sync       client-network weights exchanged for averaging (fp32 parameters and batch-norm
               running statistics, each way)
    meta       the part of up, down and val that describes values rather than carries them (scales,
               indices, bitmaps: Payload.meta_nbytes; the per-sample refresh map above); counted in
               up, down and val as well
    wire_up    every byte of the training frames client -> server: the above plus frame headers
    wire_down  every byte of the training frames server -> client
    exchanges  messages whose reply the client waits for (a FULL step's gradient, a weight fetch):
               the link model charges one round trip for each
KINDS are the payload kinds (final/total_bytes adds them up, meta once, inside the others); the
last three are the frames' own counts.
"""

from __future__ import annotations

from collections import Counter

KINDS = ("up", "down", "labels", "sync", "meta", "val")


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
