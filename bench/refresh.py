"""Per-sample refresh (RunConfig.refresh_threshold), the client's end: which samples a FORWARD
epoch resends. In the spirit of AQ-SGD (Wang et al., NeurIPS 2022) and SplitCom: the server's cache
is kept per sample (bench.cache.SampleCache) and only what moved crosses again.

Protocol, per batch of a FORWARD epoch: the client computes the activations a of the batch, sends
the map of which samples follow (1 bit per sample, counted as up bytes), then a[sent] and their
labels through the up codec as one message. A sample is sent when the server holds none for it, or
when ||a - h|| > threshold x ||h|| (relative L2 distance) where h is the copy the server holds.
threshold 0 resends every sample that moved at all. FULL epochs send every sample (the client's
backward needs each one's gradient) and so refresh every copy. Positions in the shard are not
payload: the batch order is drawn from a seeded generator that both ends could hold. The frames
carry them (and the map) as bookkeeping all the same, counted only in the wire bytes
(bench/wire/frames.py, AUX).

Memory: to compare, the client keeps what the server holds (it decodes what it sent, as the server
does): one decoded activation per training sample, samples x activation elements x 4 bytes
(float32), as much again as the server's cache.

Augmentation: each sample keeps one view between FULL epochs. Its crop and flip are drawn at the
start of each FULL epoch (from the client's generator) and reused by the FORWARD epochs after it,
so a measured change is a change of the client network, not of the view.
"""

from __future__ import annotations

import torch

from bench.cache import SampleCache


class SampleRefresh:
    """The client's copy of the server's per-sample cache and the rule that picks what to resend;
    its `held.order` draws the CACHED epochs' batches of `batch_size` samples, as the server's would."""

    def __init__(self, threshold: float, samples: int, batch_size: int):
        self.threshold = threshold
        self.held = SampleCache(samples, batch_size, regularisers=None)

    def select(self, positions: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
        """Boolean mask over the batch: the samples whose activations must be sent."""
        fresh = ~self.held.held[positions.cpu()].to(acts.device)
        if self.held.acts is None:
            return fresh
        old = self.held.acts[positions.to(acts.device)].flatten(1)
        moved = (acts.flatten(1) - old).norm(dim=1) > self.threshold * old.norm(dim=1)
        return fresh | moved

    def remember(self, positions: torch.Tensor, acts: torch.Tensor, labels: torch.Tensor) -> None:
        """What the server now holds for `positions` (the decoded activations it received)."""
        self.held.store(positions, acts, labels)
