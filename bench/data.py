"""Data sets held in memory as uint8 tensors, and their normalised batches.

    ds = load("cifar10", data_dir, train_subset=5000, seed=0)
    shards = iid_shards(ds.train_y, n=4, seed=0)             # bench/subsets.py: one index tensor per client
    g = torch.Generator().manual_seed(0)
    for x, y in batches(ds, "train", shards[0], 128, shuffle=True, augment=True, generator=g):
        ...                                                   # x float32 normalised, y int64

cifar10 and fashion_mnist are read from files (bench/datafiles.py: where they are found, their
formats, the cache of decoded tensors); synthetic is generated from the seed, no files; small and
quickly learnable, for tests. A subset is drawn stratified, as equal per class as the class sizes
allow (bench/subsets.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bench import datafiles
from bench.augment import Crops, Epoch
from bench.errors import UsageError
from bench.registry import unknown_name_message
from bench.subsets import stratified, stream_generator

DATASETS = ("cifar10", "fashion_mnist", "synthetic")

# Per-channel statistics of the train split, as published: CIFAR-10's std over all pixels (not the
# often copied per-image 0.2023, 0.1994, 0.2010); Fashion-MNIST's over the unpadded 28x28 images.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)

SYNTHETIC_TRAIN, SYNTHETIC_TEST = 2000, 500


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value; compare fields
class Dataset:
    """A whole data set in memory: images uint8 [N, C, H, W], labels int64 [N] in 0..num_classes-1.

    mean/std: per channel, in [0, 1] units; `batches` normalises with them. source: where the images
    came from (a resolved path, or how they were generated).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    source: str

    def to(self, device: torch.device | str) -> "Dataset":
        """The same data set with its tensors on `device` (tensors already there are not copied)."""
        moved = {f: getattr(self, f).to(device) for f in ("train_x", "train_y", "test_x", "test_y")}
        return dataclasses.replace(self, **moved)

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]


def load(
    name: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
) -> Dataset:
    """The data set `name` (one of DATASETS), optionally cut down to stratified subsets.

    train_subset/test_subset: that many samples, drawn with `seed`, as equal per class as the class
    sizes allow (None = all); outside num_classes..available is a UsageError naming the field.
    `seed` also generates `synthetic`. cache_dir defaults to ~/.cache/splitbench.
    A data set that cannot be found is a UsageError saying where it looked and how to provide it.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "splitbench"
    if name == "cifar10":
        tensors, source = datafiles.cifar10(data_dir, cache_dir)
        data = Dataset(name, **tensors, mean=CIFAR10_MEAN, std=CIFAR10_STD, num_classes=10, source=source)
    elif name == "fashion_mnist":
        tensors, source = datafiles.fashion_mnist(data_dir, cache_dir)
        data = Dataset(name, **tensors, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD, num_classes=10,
                       source=source)
    elif name == "synthetic":
        data = _synthetic(seed)
    else:
        raise UsageError(unknown_name_message("dataset", name, list(DATASETS)))
    return _subset(data, train_subset, test_subset, seed)


def digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    """16 hex digits of the SHA-256 of exactly these images and labels (their bytes, shape and
    order): two runs that trained on the same images show the same digest."""
    h = hashlib.sha256(f"{tuple(images.shape)}|{tuple(labels.shape)}".encode())
    for t in (images, labels):
        h.update(memoryview(t.detach().cpu().contiguous().numpy()).cast("B"))
    return h.hexdigest()[:16]


def batches(
    data: Dataset,
    split: str,
    indices: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    augment: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    crops: Crops | None = None,
) -> Epoch:
    """One epoch over `indices` of `split` ("train" or "test") as (x, y) on `device`.

    x: float32 [B, C, H, W], normalised with data.mean/std; y: int64 [B]. Batches follow `indices`
    (or a shuffle of them); the last one may be smaller. augment: per image, a random crop of the
    image zero-padded by 4 px and a horizontal flip with probability 1/2, as torchvision's
    RandomCrop(size, padding=4) + RandomHorizontalFlip. Shuffling and augmentation draw from
    `generator` only (a CPU generator), all of it when this is called, so an epoch is reproducible
    from its state. Batches are made where the images live (see `Dataset.to`), then moved to `device`.
    crops: fixed augmentation, one crop per entry of `indices` (in their order; requires
    shuffle=False), instead of drawn ones (bench.augment.draw_crops).
    """
    images, labels = {"train": (data.train_x, data.train_y), "test": (data.test_x, data.test_y)}[split]
    return Epoch(images, labels, indices, batch_size, data.mean, data.std, shuffle=shuffle, augment=augment,
                 generator=generator, device=device, crops=crops)


def _subset(data: Dataset, train_subset: int | None, test_subset: int | None, seed: int) -> Dataset:
    cut = {}
    for split, k in (("train", train_subset), ("test", test_subset)):
        if k is None:
            continue
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        if not data.num_classes <= k <= len(y):
            raise UsageError(f"{split}_subset: must be between {data.num_classes} and {len(y)}, got {k}")
        picked = stratified(y, k, stream_generator(seed, split))
        cut[f"{split}_x"], cut[f"{split}_y"] = x[picked], y[picked]
    return dataclasses.replace(data, **cut)


def _synthetic(seed: int) -> Dataset:
    """10 balanced classes of 3x32x32 images: a smooth random template per class plus pixel noise.

    The templates vary slowly (4x4 upsampled) so that crops and flips keep the class; their contrast
    is set well below the noise's so that learning takes more than one step: a two-conv CNN (SGD,
    lr 0.05, batch 64, augmented) reaches about 67% test accuracy after one epoch and 99% after two.
    """
    g = stream_generator(seed, "synthetic")
    templates = F.interpolate(torch.randn(10, 3, 4, 4, generator=g), size=32, mode="bilinear")

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = (torch.arange(n) % 10)[torch.randperm(n, generator=g)]
        x = 128 + 12 * templates[y] + 50 * torch.randn(n, 3, 32, 32, generator=g)
        return x.round().clamp(0, 255).to(torch.uint8), y

    train_x, train_y = split(SYNTHETIC_TRAIN)
    test_x, test_y = split(SYNTHETIC_TEST)
    pixels = train_x.float() / 255
    return Dataset(
        "synthetic", train_x, train_y, test_x, test_y,
        mean=tuple(pixels.mean(dim=(0, 2, 3)).tolist()),
        std=tuple(pixels.std(dim=(0, 2, 3)).tolist()),
        num_classes=10,
        source=f"synthetic: generated from seed {seed}, no files",
    )
