"""The cut: everything that crosses between a client and the server goes through a Link, and
every byte is counted in the Ledger from the tensors that actually cross.

Kinds of traffic, one counter each (the metric names in DESIGN.md):
    up      activations, client -> server (codec `quant_up`, scales included); with per-sample
            refresh also the map of which samples of a batch were sent, 1 bit per sample
            (ceil(B / 8) bytes per batch)
    down    cut-layer gradients, server -> client (codec `quant_down`)
    labels  training labels, client -> server, as the smallest unsigned integer type that holds
            the class index (uint8 for CIFAR-10: 1 byte per sample)
    val     activations of the validation slice, client -> server (codec `quant_up`), sent after
            each FULL or FORWARD epoch when the run holds a slice out (RunConfig.val_fraction)
    sync    client-network weights exchanged for averaging (fp32 parameters and batch-norm
            running statistics, each way)
    meta    the part of up, down and val that describes values rather than carries them (scales,
            indices, bitmaps: Payload.meta_nbytes; the per-sample refresh map above); counted in
            up, down and val as well
"""

from __future__ import annotations

from collections import Counter

import torch

from quantizers import Payload, reset

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


def label_dtype(num_classes: int) -> torch.dtype:
    return torch.uint8 if num_classes <= 256 else torch.int32


class Link:
    """One client's connection to the server: its two codecs and its line in the ledger."""

    def __init__(self, client: int, up, down, ledger: Ledger, num_classes: int):
        self.client = client
        self.up = up
        self.down = down
        self.ledger = ledger
        self.label_dtype = label_dtype(num_classes)

    def send_up(self, activations: torch.Tensor, kind: str = "up") -> Payload:
        payload = self.up.encode(activations.detach())
        self._count(kind, payload)
        return payload

    def send_bitmap(self, sent: torch.Tensor) -> None:
        """Count the map of which samples of a batch follow: one bit per sample, padded to bytes;
        it describes the payload rather than carries values, so it is meta as well as up."""
        nbytes = (len(sent) + 7) // 8
        self.ledger.add(self.client, "up", nbytes)
        self.ledger.add(self.client, "meta", nbytes)

    def receive_up(self, payload: Payload, like: torch.Tensor) -> torch.Tensor:
        """The activations as the server sees them: a fresh leaf, so their gradient can go down."""
        return self.up.decode(payload, like).detach().requires_grad_(True)

    def send_down(self, grad: torch.Tensor) -> torch.Tensor:
        payload = self.down.encode(grad)
        self._count("down", payload)
        return self.down.decode(payload, grad)

    def _count(self, kind: str, payload: Payload) -> None:
        self.ledger.add(self.client, kind, payload.nbytes)
        self.ledger.add(self.client, "meta", payload.meta_nbytes)

    def reset(self) -> None:
        """Clear both codecs' state (error-feedback residuals): the engine calls it when the
        client's cache is refreshed, at the start of each epoch in which the client sends."""
        reset(self.up)
        reset(self.down)

    def send_labels(self, labels: torch.Tensor) -> torch.Tensor:
        wire = labels.to(self.label_dtype)
        self.ledger.add(self.client, "labels", wire.numel() * wire.element_size())
        return wire.long()

    def send_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Count one transfer of a client network's exchanged state (either direction)."""
        self.ledger.add(self.client, "sync", exchanged_bytes(state))


def exchanged_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What averaging exchanges: every floating-point entry of the state dict (parameters and
    batch-norm running statistics; the integer batch counters are not averaged)."""
    return {k: v for k, v in net.state_dict().items() if v.is_floating_point()}


def exchanged_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(v.numel() * v.element_size() for v in state.values())
