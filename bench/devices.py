"""Which device a run or a sweep worker computes on.

A config names a kind ("auto", "cpu", "cuda"); `resolve_device` turns it into the device of this
process. A sweep worker first calls `use_worker_device(index)`: with CUDA, worker i takes visible
device i % (number of visible devices), so N workers share one GPU or spread round-robin over those
in CUDA_VISIBLE_DEVICES; without CUDA nothing changes.
"""

from __future__ import annotations

import torch

from bench.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when there is one; asking for CUDA where there is none is a UsageError.

    CUDA resolves to this process's current CUDA device (the one `use_worker_device` chose), by index.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("device: cuda is not available on this machine (use --device cpu or auto)")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def worker_device(index: int, visible: int) -> torch.device | None:
    """The CUDA device of sweep worker `index` among `visible` devices (round-robin); None when there are none."""
    return torch.device("cuda", index % visible) if visible else None


def use_worker_device(index: int) -> torch.device | None:
    """Make worker `index`'s CUDA device this process's current one; returns it (None without CUDA)."""
    device = worker_device(index, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if device is not None:
        torch.cuda.set_device(device)
    return device
