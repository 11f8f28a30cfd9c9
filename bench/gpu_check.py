"""`make gpu-check` (python -m bench.gpu_check): the device check, at most 8 minutes on one GPU.

With CUDA it prints `make bench`'s device rows (plain vs split images/s of VGG11 and ResNet18 at
batch 128 on CIFAR-10, each codec's GB/s), then trains VGG11 (cut 2, fp32 both ways) for 15 epochs
on PAPER.md's recipe with its schedule scaled to the shorter run, printing each epoch and the final
test accuracy on all 10,000 test images. Without CUDA it says so, runs a tiny smoke version of the
same on the CPU (synthetic data, a narrow network; figures not representative) and exits 0.

Runs from a source tree with a list sink: it needs torch, torchvision, tqdm and the data, not
MLflow or Optuna, so it works on a bare machine with only PyTorch installed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import torch

from bench import data, device_bench, names
from bench.config import RunConfig
from bench.engine import ListSink, train
from bench.text_table import print_table

PAPER_EPOCHS = 200
PAPER_MILESTONES = (60, 120, 160)


def recipe(epochs: int, **overrides) -> RunConfig:
    """PAPER.md's VGG11 recipe, its lr milestones scaled from 200 epochs to `epochs`."""
    milestones = tuple(sorted({max(1, round(m * epochs / PAPER_EPOCHS)) for m in PAPER_MILESTONES}))
    return RunConfig(**(dict(model="vgg11", cut=2, dataset="cifar10", epochs=epochs, batch_size=128, lr=0.05,
                             momentum=0.9, weight_decay=5e-4, warmup_epochs=1, lr_milestones=milestones,
                             lr_gamma=0.2) | overrides))


def check(cfg: RunConfig, ds: data.Dataset, device: torch.device, bench_overrides: dict, codec_numel: int) -> float:
    """Prints the device rows, then trains `cfg` epoch by epoch; returns the final test accuracy."""
    rows = device_bench.rows(device, ds, force=True, codec_numel=codec_numel, **bench_overrides)
    print_table(("measure", "value", "detail", "target"), rows)

    class Printer(ListSink):
        def log_epoch(self, epoch, metrics):
            super().log_epoch(epoch, metrics)
            print(f"epoch {epoch:3d}  loss {metrics[names.TRAIN_LOSS]:.4f}  test acc {metrics[names.TEST_ACC]:.4f}  "
                  f"{metrics[names.EPOCH_S]:.2f} s", flush=True)

    print(f"{cfg.model} cut {cfg.cut}, {cfg.epochs} epochs, lr {cfg.lr} x{cfg.lr_gamma} at {cfg.lr_milestones}, "
          f"batch {cfg.batch_size}, {len(ds.train_y)} train / {len(ds.test_y)} test images", flush=True)
    run = train(cfg, Printer(), dataset=ds, progress=False)
    acc = run.final[names.FINAL_TEST_ACC]
    images_per_s = len(ds.train_y) * cfg.epochs / run.final[names.FINAL_TRAIN_S]
    print(f"final test accuracy {acc:.4f}; {images_per_s:.0f} train images/s", flush=True)
    return acc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the VGG11 run on CUDA (default 15)")
    parser.add_argument("--data-dir", default=os.environ.get("SPLITBENCH_DATA") or None,
                        help="CIFAR-10's folder (default: $SPLITBENCH_DATA, then ./data)")
    parser.add_argument("--smoke", action="store_true", help="the CPU smoke version, even where CUDA is available")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cuda = torch.cuda.is_available() and not args.smoke
    name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    print(f"gpu-check {datetime.date.today()}: torch {torch.__version__}, "
          f"{'CUDA ' + torch.version.cuda + ', ' + name if cuda else 'no CUDA, ' + name}", flush=True)
    if cuda:
        cfg = recipe(args.epochs, data_dir=args.data_dir, device="cuda")
        acc = check(cfg, cfg.load_data(), torch.device("cuda"), {}, 1 << 24)
    else:
        why = "asked for" if torch.cuda.is_available() else "no CUDA device"
        print(f"{why}: smoke version on the CPU (64 synthetic images, width 1/16, batch 32; figures not representative)")
        cfg = recipe(2, dataset="synthetic", width=0.0625, train_subset=64, test_subset=20, batch_size=32,
                     warmup_epochs=0, device="cpu")
        small = {"width": cfg.width, "batch_size": cfg.batch_size}
        acc = check(cfg, cfg.load_data(), torch.device("cpu"), small, 1 << 16)
    print(f"gpu-check done in {time.perf_counter() - started:.0f} s (final test accuracy {acc:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
