"""How the training set is split among the clients: IID, Dirichlet label skew, or K classes each.

    shards = split(ds.train_y, clients=5, seed=0, kind="dirichlet", alpha=0.1)   # one index tensor per client
    counts = class_counts(ds.train_y, shards, ds.num_classes)                  # clients x classes

iid        every class dealt out equally (bench.subsets.iid_shards): equal shards, equal class counts.
dirichlet  label skew as in FedML and SLPerf (after Hsu et al., 2019, arXiv 1909.06335): for each
           class, proportions p ~ Dir(alpha, ..., alpha) over the clients; a client already holding
           more than N / clients samples gets none of the class (FedML's balancing), the others'
           proportions are renormalised (shared equally among them if the draw gave them nothing),
           and the class's shuffled samples are cut at the cumulative
           proportions. The whole draw is repeated until every client holds at least `min_samples`
           (FedML's min_require_size), at most MAX_DRAWS times. Small alpha: each client sees few
           classes; large alpha: close to IID.
classes    pathological non-IID (McMahan et al., 2017; FL-bench's, NIID-Bench's "#C=k"): client i
           holds the K classes at positions i*K .. i*K+K-1 (mod the number of classes) of a
           seeded permutation of the classes; each class's shuffled samples are split as equally as
           possible among the clients that hold it. With clients x K >= classes every class is held.

Every draw comes from the run's seed (one stream per purpose), so seed k of every setting trains
on the same shards: comparisons stay paired. Shards are disjoint, sorted index tensors; FedAvg
weights each client by its shard's size (bench.engine). A partition that leaves a client with
fewer than `min_samples` samples is a UsageError naming the field.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from bench.errors import UsageError
from bench.subsets import iid_shards

PARTITIONS = ("iid", "dirichlet", "classes")
MAX_DRAWS = 1000  # Dirichlet draws before a floor is declared out of reach


@dataclass(frozen=True)
class Partition:
    """A partition scheme and its parameters, as RunConfig holds them (checked by `check`)."""

    kind: str = "iid"
    alpha: float | None = None  # dirichlet: the concentration
    classes_per_client: int | None = None  # classes: K
    min_samples: int = 10  # the floor of samples per client (dirichlet, classes)

    def check(self) -> None:
        """UsageError, naming the RunConfig field, when the parameters do not fit the kind."""
        if self.kind == "dirichlet":
            if self.alpha is None:
                raise UsageError("partition_alpha: partition = dirichlet needs a concentration, e.g. 0.5")
            if not _number(self.alpha) or self.alpha <= 0:
                raise UsageError(f"partition_alpha: must be a number > 0, got {self.alpha!r}")
        elif self.alpha is not None:
            raise UsageError(f"partition_alpha: applies to partition = dirichlet only (partition = {self.kind})")
        if self.kind == "classes":
            if self.classes_per_client is None:
                raise UsageError("classes_per_client: partition = classes needs K, the classes each client holds")
            if not _integer(self.classes_per_client) or self.classes_per_client < 1:
                raise UsageError(f"classes_per_client: must be an integer >= 1, got {self.classes_per_client!r}")
        elif self.classes_per_client is not None:
            raise UsageError(f"classes_per_client: applies to partition = classes only (partition = {self.kind})")
        if not _integer(self.min_samples) or self.min_samples < 1:
            raise UsageError(f"partition_min_samples: must be an integer >= 1, got {self.min_samples!r}")

    def label(self) -> str:
        """How a reader names it: "iid", "Dirichlet α=0.1", "2 classes each"."""
        if self.kind == "dirichlet":
            return f"Dirichlet α={self.alpha:g}"
        if self.kind == "classes":
            return f"{self.classes_per_client} class{'es' if self.classes_per_client > 1 else ''} each"
        return "iid"

    def split(self, labels: torch.Tensor, clients: int, seed: int) -> list[torch.Tensor]:
        """The clients' shards of `labels` (on labels' device); see the module docstring."""
        if self.kind == "iid":
            return iid_shards(labels, clients, seed)
        host = labels.cpu()
        classes = int(host.max()) + 1 if len(host) else 0
        if self.kind == "dirichlet":
            shards = _dirichlet(host, clients, seed, self.alpha, self.min_samples)
        else:
            if self.classes_per_client > classes:
                raise UsageError(f"classes_per_client: must be at most the {classes} classes of the data set, "
                                 f"got {self.classes_per_client}")
            shards = _classes(host, clients, seed, self.classes_per_client)
        smallest = min(len(s) for s in shards)
        if smallest < self.min_samples:
            raise UsageError(f"partition_min_samples: a client holds {smallest} samples, fewer than "
                             f"{self.min_samples}, in this {self.label()} partition of {len(host)} samples "
                             f"among {clients} clients")
        return [s.to(labels.device) for s in shards]


def class_counts(labels: torch.Tensor, shards: list[torch.Tensor], num_classes: int) -> list[list[int]]:
    """Per client, how many samples of each class its shard holds."""
    return [labels[s].cpu().bincount(minlength=num_classes).tolist() for s in shards]


def _dirichlet(labels: torch.Tensor, clients: int, seed: int, alpha: float, floor: int) -> list[torch.Tensor]:
    n = len(labels)
    if clients * floor > n:
        raise UsageError(f"partition_min_samples: {clients} clients of at least {floor} samples need "
                         f"{clients * floor}, the data set has {n}")
    rng = _rng(seed, "dirichlet")
    groups = [(labels == c).nonzero().flatten().numpy() for c in range(int(labels.max()) + 1)]
    for _ in range(MAX_DRAWS):
        taken: list[list[np.ndarray]] = [[] for _ in range(clients)]
        sizes = np.zeros(clients, dtype=np.int64)
        for group in groups:
            group = rng.permutation(group)
            p = rng.dirichlet(np.full(clients, alpha))
            open_ = sizes < n / clients  # FedML: a client above the mean share takes no more
            p = p * open_
            # at a tiny alpha the draw may put all its mass on closed clients: share among the open ones
            p = p / p.sum() if p.sum() > 0 else open_ / open_.sum()
            cuts = (np.cumsum(p) * len(group)).astype(np.int64)[:-1]
            for k, part in enumerate(np.split(group, cuts)):
                taken[k].append(part)
                sizes[k] += len(part)
        if sizes.min() >= floor:
            return [torch.from_numpy(np.sort(np.concatenate(t))).long() for t in taken]
    raise UsageError(f"partition_min_samples: no Dirichlet draw with alpha {alpha:g} gave each of {clients} "
                     f"clients {floor} samples in {MAX_DRAWS} draws; raise partition_alpha or lower the floor")


def _classes(labels: torch.Tensor, clients: int, seed: int, k: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(_stream(seed, "classes"))
    num_classes = int(labels.max()) + 1
    order = torch.randperm(num_classes, generator=g).tolist()
    holders: dict[int, list[int]] = {c: [] for c in range(num_classes)}
    for client in range(clients):
        for j in range(k):
            holders[order[(client * k + j) % num_classes]].append(client)
    taken: list[list[torch.Tensor]] = [[] for _ in range(clients)]
    for c in range(num_classes):
        group = (labels == c).nonzero().flatten()
        group = group[torch.randperm(len(group), generator=g)]
        if holders[c]:
            for client, part in zip(holders[c], group.tensor_split(len(holders[c]))):
                taken[client].append(part)
    return [torch.cat(t).sort().values if t else torch.zeros(0, dtype=torch.long) for t in taken]


def _stream(seed: int, purpose: str) -> int:
    return zlib.crc32(f"{purpose}/{seed}".encode())


def _rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(_stream(seed, purpose))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
