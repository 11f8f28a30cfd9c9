"""Device throughput: images/s of plain and split training, and each codec's GB/s, on the device.

    rows(device, dataset)   # -> [(measure, value, detail, target)], as bench/benchmark.py prints them

Plain training is the whole network on the engine's data path (batches made on the device);
split training is one epoch of the engine (policy always, the given codecs). Both run at batch 128
after one untimed warm-up epoch, with the device synchronised before the clock is read. Without
CUDA the rows say so, unless `force` asks for the (slow, unrepresentative) CPU figures.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from bench import data, models, names, timing
from bench.acceleration import Acceleration
from bench.config import RunConfig
from bench.engine import train
from quantizers import QUANTIZERS

MODELS = (("vgg11", 2), ("resnet18", 1))  # (model, cut): split after the first block
SPLIT_TARGET = "<= 1.05"


def plain_images_per_s(cfg: RunConfig, ds: data.Dataset, device: torch.device) -> float:
    """Images/s of one epoch of ordinary training of cfg's whole network (ds already on `device`)."""
    accel = Acceleration.of(cfg, device)
    torch.manual_seed(cfg.seed)
    net = accel.place(models.build(cfg.model, in_channels=ds.in_channels, num_classes=ds.num_classes,
                                   width=cfg.width))
    accel.compile_all(net)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    seconds = 0.0
    for _ in range(2):  # the first epoch warms up kernels (and compiles)
        epoch = data.batches(ds, "train", torch.arange(len(ds.train_y)), cfg.batch_size, augment=cfg.augment,
                             shuffle=True, generator=gen, device=device)
        timing.synchronize(device)
        started = time.perf_counter()
        for x, y in epoch:
            timing.plain_step(net, opt, accel, x, y)
        timing.synchronize(device)
        seconds = time.perf_counter() - started
    return len(ds.train_y) / seconds


def split_images_per_s(cfg: RunConfig, ds: data.Dataset) -> float:
    """Images/s of the engine's second epoch (the first warms up); the engine syncs before its clock."""
    run = train(dataclasses.replace(cfg, epochs=2), dataset=ds, progress=False)
    return len(ds.train_y) / run.epochs[1][names.EPOCH_S]


def codec_gb_per_s(name: str, device: torch.device, numel: int = 1 << 24, repeats: int = 5) -> float:
    """GB/s of fp32 input through encode + decode on `device` (best of `repeats`, after a warm-up)."""
    codec = QUANTIZERS.get(name)()
    x = torch.randn(numel, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        timing.synchronize(device)
        started = time.perf_counter()
        codec.decode(codec.encode(x), x)
        timing.synchronize(device)
        best = min(best, time.perf_counter() - started)
    return x.numel() * x.element_size() / best / 1e9


def syncs_per_step(device: torch.device) -> float:
    """Host synchronisations per training step of the engine on CUDA (target 0).

    Two runs with 20 and 40 steps per epoch do the same per-epoch work (draws copied over, losses
    and accuracy read back), so their difference counts what each step adds.
    """
    cfg = dict(model="smallcnn", dataset="synthetic", test_subset=100, epochs=2, batch_size=32,
               device=device.type, quant_up="fp8_e4m3", quant_down="fp8_e5m2")
    runs = {n: RunConfig(**cfg, train_subset=n) for n in (640, 1280)}
    train(runs[640], progress=False)  # warm-up: cuDNN, the allocator
    short, long = (timing.host_syncs(lambda r=r: train(r, progress=False)) for r in runs.values())
    return (long - short) / (2 * 20)


def rows(device: torch.device, ds: data.Dataset | None, *, codecs: tuple[str, str] = ("fp8_e4m3", "fp8_e5m2"),
         force: bool = False, codec_numel: int = 1 << 24, **overrides) -> list[tuple[str, str, str, str]]:
    """The device's rows (`ds`: the data set to train on); on a CPU, unless `force`, one row per measure
    saying it needs CUDA (and `ds` is not used).

    overrides: RunConfig fields of the timed runs (e.g. width, batch_size, amp, channels_last).
    """
    measures = (["host syncs per training step"] + [f"{m} split/plain time per image" for m, _ in MODELS]
                + [f"{c} on device" for c in QUANTIZERS.names()])
    if device.type != "cuda" and not force:
        return [(name, "needs CUDA", f"device is {device}", "") for name in measures]
    out = []
    if device.type == "cuda":
        out.append(("host syncs per training step", f"{syncs_per_step(device):.2f}", "engine, smallcnn, fp8", "0"))
    on_device = ds.to(device)
    for model, cut in MODELS:
        cfg = RunConfig(**(dict(model=model, cut=cut, dataset=ds.name, batch_size=128, quant_up=codecs[0],
                                quant_down=codecs[1], device=device.type) | overrides))
        split, plain = split_images_per_s(cfg, on_device), plain_images_per_s(cfg, on_device, device)
        # Time, not throughput: the target bounds how much slower split training is than plain.
        out.append((f"{model} split/plain time per image", f"{plain / split:.3f}",
                    f"{split:.0f} vs {plain:.0f} img/s, cut {cut}, {codecs[0]}/{codecs[1]}", SPLIT_TARGET))
    for name in QUANTIZERS.names():
        gb_per_s = codec_gb_per_s(name, device, codec_numel)
        detail = f"{codec_numel * 4 / 2**20:g} MiB fp32, encode+decode"
        out.append((f"{name} on device", f"{gb_per_s:.2f} GB/s", detail, ""))
    return out
