"""Which samples a run uses: stratified subsets of a data set, IID client shards, and each shard's
validation slice. Every draw comes from a generator of its own, made from the seed and its purpose.

    picked = stratified(labels, 5000, stream_generator(seed, "train"))  # as equal per class as can be
    shards = iid_shards(labels, n=4, seed=0)                            # one index tensor per client
    train, val = hold_out(shards[0], 0.1, seed=0)                       # the validation slice held out

Non-IID partitions are bench/partition.py's.
"""

from __future__ import annotations

import zlib

import torch

from bench.errors import UsageError


def stream_generator(seed: int, stream: str) -> torch.Generator:
    """A generator of its own for each purpose (`stream`), so that e.g. the test subset does not depend
    on whether a train subset was drawn before it."""
    return torch.Generator().manual_seed(zlib.crc32(f"{stream}/{seed}".encode()))


def shuffled_classes(labels: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    """The indices of each class present in `labels`, each in a random order."""
    groups = [(labels == c).nonzero().flatten() for c in labels.unique()]
    return [g[torch.randperm(len(g), generator=generator)] for g in groups]


def stratified(labels: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k sorted indices, as equal per class as the class sizes allow (counts differ by at most 1)."""
    # Smallest classes first, so what one cannot give is spread over the larger ones after it.
    groups = sorted(shuffled_classes(labels, generator), key=len)
    taken, left = [], k
    for i, g in enumerate(groups):
        share = min(len(g), left // (len(groups) - i))
        taken.append(g[:share])
        left -= share
    return torch.cat(taken).sort().values


def iid_shards(labels: torch.Tensor, n: int, seed: int) -> list[torch.Tensor]:
    """n disjoint, sorted index tensors into `labels`, equal in size and in count per class.

    Each class is shuffled with `seed` and dealt out equally; what is left of a class (fewer than n
    samples) is dropped, so the shards cover all but fewer than n * num_classes samples. n outside
    1..(largest class) is a UsageError: every shard would be empty.
    """
    groups = shuffled_classes(labels, stream_generator(seed, "shards"))
    largest = max(len(g) for g in groups)
    if not 1 <= n <= largest:
        raise UsageError(f"clients: must be between 1 and {largest} for this data set, got {n}")
    dealt = [g[: len(g) // n * n].view(n, -1) for g in groups]  # row s = shard s's share
    return list(torch.cat(dealt, dim=1).sort(dim=1).values.unbind())


def check_hold_out(shard_sizes: list[int], fraction: float) -> None:
    """UsageError when holding `fraction` of a shard out (hold_out) leaves a validation slice or a
    training shard empty; fraction 0 holds nothing out."""
    if fraction and not all(0 < round(fraction * n) < n for n in shard_sizes):
        raise UsageError(f"val_fraction: {fraction} of shards of {min(shard_sizes)} samples leaves a validation "
                         "slice or a training shard empty")


def hold_out(shard: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation): round(fraction x len(shard)) indices of `shard`, drawn with `seed`, held
    out of training; both sorted. fraction 0 returns the shard itself and an empty slice."""
    k = round(fraction * len(shard))
    picked = torch.randperm(len(shard), generator=stream_generator(seed, "validation"))[:k]
    held = torch.zeros(len(shard), dtype=torch.bool)
    held[picked] = True
    return shard[~held], shard[held]
