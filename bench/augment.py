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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CROP_PADDING = 4


class Epoch:
    """One pass over `indices` of `images`/`labels` in batches of `batch_size` (the last may be smaller).

    augment: per image, a random crop of the image zero-padded by 4 px and a horizontal flip with
    probability 1/2, as torchvision's RandomCrop(size, padding=4) + RandomHorizontalFlip.
    Batches are made where the images live, then moved to `device` and normalised with mean/std
    (per channel, in [0, 1] units). Iterating twice gives the same batches.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, batch_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], *, shuffle: bool = False, augment: bool = False,
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu"):
        if (shuffle or augment) and generator is None:
            raise ValueError("batches: shuffle and augment draw from a generator; pass one")
        order = indices[torch.randperm(len(indices), generator=generator)] if shuffle else indices
        self.sizes = [len(b) for b in order.split(batch_size)]
        self.images, self.labels, self.device = images, labels, device
        self.order = order.to(images.device)
        self.offsets = self.flips = None
        if augment:
            draws = [(torch.randint(0, 2 * CROP_PADDING + 1, (2, b, 1), generator=generator),
                      torch.rand(b, 1, generator=generator) < 0.5) for b in self.sizes]
            self.offsets = torch.cat([o for o, _ in draws], dim=1).to(images.device)
            self.flips = torch.cat([f for _, f in draws]).to(images.device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self):
        start = 0
        for size in self.sizes:
            batch = self.order[start : start + size]
            x = self.images[batch]
            if self.offsets is not None:
                x = crop_and_flip(x, self.offsets[:, start : start + size], self.flips[start : start + size])
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
