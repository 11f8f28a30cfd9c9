"""One epoch of batches, made on the device that holds the images: draws first, pixels on demand.

    epoch = Epoch(images, labels, indices, 128, mean, std, shuffle=True, augment=True, generator=g)
    len(epoch)          # batches; the draws for all of them were taken when `epoch` was made
    for x, y in epoch:  # x float32 normalised, y int64, both on `device`
        ...

Every random number comes from a CPU generator, taken when the Epoch is made and in this order:
the shuffle (one randperm), then per batch the crop offsets (randint, shape [2, batch, 1]) and the
flips (rand, shape [batch, 1]). The draws are therefore the same whatever the device, and an epoch
is reproducible from the generator's state. They move to the images' device in one copy each;
from then on a batch is made there (gather, crop, flip, normalise) without reading anything back
to the host, so a CUDA run never waits on the host between steps.

Fixed crops: `draw_crops` takes those same draws on its own, and `Epoch(..., crops=crops)` applies
them, one per entry of `indices` in their order, instead of drawing (per-sample refresh keeps each
sample's view fixed across epochs this way; bench/layouts/per_sample.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CROP_PADDING = 4


@dataclass(frozen=True)
class Crops:
    """One crop per image: window offsets [2, n, 1] (rows, cols) and mirror flags [n, 1] (bool)."""

    offsets: torch.Tensor
    flips: torch.Tensor

    def __len__(self) -> int:
        return len(self.flips)

    def take(self, index: torch.Tensor) -> "Crops":
        return Crops(self.offsets[:, index], self.flips[index])

    def to(self, device: torch.device | str) -> "Crops":
        return Crops(self.offsets.to(device), self.flips.to(device))


def draw_crops(sizes: list[int], generator: torch.Generator) -> Crops:
    """Crops for batches of `sizes`, as Epoch draws them: per batch the offsets (randint, shape
    [2, batch, 1]), then the flips (rand, shape [batch, 1])."""
    draws = [(torch.randint(0, 2 * CROP_PADDING + 1, (2, b, 1), generator=generator),
              torch.rand(b, 1, generator=generator) < 0.5) for b in sizes]
    return Crops(torch.cat([o for o, _ in draws], dim=1), torch.cat([f for _, f in draws]))


class Epoch:
    """One pass over `indices` of `images`/`labels` in batches of `batch_size` (the last may be smaller).

    augment: per image, a random crop of the image zero-padded by 4 px and a horizontal flip with
    probability 1/2, as torchvision's RandomCrop(size, padding=4) + RandomHorizontalFlip.
    Batches are made where the images live, then moved to `device` and normalised with mean/std
    (per channel, in [0, 1] units). Iterating twice gives the same batches. crops: fixed crops, one
    per entry of `indices`, applied instead of drawn ones (requires shuffle=False; draws nothing).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, batch_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], *, shuffle: bool = False, augment: bool = False,
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                 crops: Crops | None = None):
        if crops is not None and (shuffle or len(crops) != len(indices)):
            raise ValueError("batches: crops fix one view per entry of indices, in their order (no shuffle)")
        if crops is None and (shuffle or augment) and generator is None:
            raise ValueError("batches: shuffle and augment draw from a generator; pass one")
        order = indices[torch.randperm(len(indices), generator=generator)] if shuffle else indices
        self.sizes = [len(b) for b in order.split(batch_size)]
        self.images, self.labels, self.device = images, labels, device
        self.order = order.to(images.device)
        if crops is None and augment:
            crops = draw_crops(self.sizes, generator)
        self.crops = None if crops is None else crops.to(images.device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self):
        start = 0
        for size in self.sizes:
            batch = self.order[start : start + size]
            x = self.images[batch]
            if self.crops is not None:
                offsets, flips = self.crops.offsets[:, start : start + size], self.crops.flips[start : start + size]
                x = crop_and_flip(x, offsets, flips)
            start += size
            y = self.labels[batch.to(self.labels.device)].to(self.device)
            yield x.to(self.device).float().div_(255).sub_(self.mean).div_(self.std), y


def crop_and_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Image i: the window at offsets[:, i] (rows, cols) of its zero-padded copy, mirrored where flips[i].

    x [B, C, H, W]; offsets [2, B, 1] in 0..2*CROP_PADDING; flips [B, 1] bool; all on x's device.
    """
    b, c, h, w = x.shape
    rows = offsets[0] + torch.arange(h, device=x.device)  # [b, h]: rows of the padded image the crop takes
    cols = offsets[1] + torch.arange(w, device=x.device)
    cols = torch.where(flips, cols.flip(1), cols)
    padded = F.pad(x, (CROP_PADDING,) * 4)
    # One gather for the whole batch: out[i, k, r, q] = padded[i, k, rows[i, r], cols[i, q]].
    i = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    k = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[i, k, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]
