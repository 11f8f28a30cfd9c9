"""Wall-clock timing on any device: the clock is read only after the device's queued work is done."""

from __future__ import annotations

import time
import warnings
from typing import Callable

import torch
import torch.nn.functional as F

from bench import models
from bench.acceleration import Acceleration


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_step(net: torch.nn.Module, opt: torch.optim.Optimizer, accel: Acceleration, x, y) -> None:
    """One step of ordinary (unsplit) training, with the run's autocast and memory format."""
    opt.zero_grad(set_to_none=True)
    with accel.autocast():
        loss = F.cross_entropy(net(accel.input(x)), y)
    loss.backward()
    opt.step()


def step_seconds(cfg, shape: tuple[int, int, int], num_classes: int, device: torch.device,
                 steps: int = 3) -> tuple[float, float]:
    """(seconds per training step, seconds per test forward) of cfg's whole network at cfg.batch_size.

    Random inputs of `shape` (C, H, W); one untimed warm-up of each first; compilation is not
    timed (cfg.compile is ignored).
    """
    accel = Acceleration(device, cfg.amp, cfg.channels_last)
    net = accel.place(models.build(cfg.model, in_channels=shape[0], num_classes=num_classes, width=cfg.width))
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    x = torch.randn(cfg.batch_size, *shape, device=device)
    y = torch.randint(0, num_classes, (cfg.batch_size,), device=device)

    def timed(step) -> float:
        step()
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        return (time.perf_counter() - started) / steps

    train = timed(lambda: plain_step(net, opt, accel, x, y))
    net.eval()
    with torch.no_grad(), accel.autocast():
        test = timed(lambda: net(accel.input(x)))
    return train, test


def host_syncs(fn: Callable[[], object]) -> int:
    """How many synchronising CUDA calls fn() makes, as torch's sync debug mode reports them."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)
