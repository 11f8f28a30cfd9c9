"""`bench sweep --spec NAME --plan`: what a sweep would run and about how long, before anything runs.

Nothing is written (no Optuna study, no MLflow run) and nothing is trained: the data sets are
opened to count their images, and each distinct network is timed for a few steps on this
machine's device. The estimate counts every epoch as a FULL epoch of plain training plus a pass
over the test split: an upper bound for gated trials (FORWARD and CACHED epochs cost less), and
it leaves out codecs and the cut, which cost little on a GPU (see `make bench`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench import timing
from bench.config import RunConfig
from bench.devices import resolve_device
from bench.spec import SweepSpec
from bench.text_table import print_table

TIMED_STEPS = 3


@dataclass(frozen=True)
class PlanRow:
    """One cell of a sweep: how many trials, of how many epochs, over how many images."""

    study: str
    trials: int  # the baseline and the sampler's budget
    seeds: int  # every trial trains once per seed
    epochs: int  # per seed of a trial
    train_images: int  # per epoch
    test_images: int  # per epoch (the test pass after each epoch)
    image_shape: tuple[int, int, int]  # (channels, height, width)
    num_classes: int
    config: RunConfig  # the cell's baseline trial, which the estimate times

    @property
    def total_epochs(self) -> int:
        return self.trials * self.seeds * self.epochs


def plan_rows(spec: SweepSpec, data_dir: str | None = None) -> list[PlanRow]:
    """One row per cell, in the spec's order; opens each distinct data set once to count its images."""
    sizes: dict[tuple, tuple[int, int, tuple[int, int, int], int]] = {}
    rows = []
    for cell in spec.cells:
        cfg = cell.config(data_dir)
        key = cfg.data_key()
        if key not in sizes:
            ds = cfg.load_data()
            sizes[key] = (len(ds.train_y), len(ds.test_y), tuple(ds.train_x.shape[1:]), ds.num_classes)
        rows.append(PlanRow(cell.study, spec.trials, len(spec.seeds), cfg.epochs, *sizes[key], cfg))
    return rows


def estimate_hours(rows: list[PlanRow], steps: int = TIMED_STEPS) -> tuple[list[float], torch.device]:
    """Device-hours per row, from `steps` timed steps of each distinct network on this machine's device."""
    device = resolve_device(rows[0].config.device) if rows else torch.device("cpu")
    timed: dict[tuple, tuple[float, float]] = {}
    hours = []
    for row in rows:
        cfg = row.config
        key = (cfg.model, cfg.width, cfg.batch_size, cfg.amp, cfg.channels_last, row.image_shape, row.num_classes)
        if key not in timed:
            timed[key] = timing.step_seconds(cfg, row.image_shape, row.num_classes, device, steps)
        train_step, test_step = timed[key]
        per_epoch = (row.train_images * train_step + row.test_images * test_step) / cfg.batch_size
        hours.append(row.total_epochs * per_epoch / 3600)
    return hours, device


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({torch.get_num_threads()} threads)"


def print_plan(spec: SweepSpec, data_dir: str | None = None, steps: int = TIMED_STEPS) -> None:
    rows = plan_rows(spec, data_dir)
    hours, device = estimate_hours(rows, steps)
    table = [("study", "trials", "seeds", "epochs/run", "epochs", "train images", "est. device-hours")]
    table += [(r.study, r.trials, r.seeds, r.epochs, r.total_epochs, r.train_images, f"{h:.2f}")
              for r, h in zip(rows, hours)]
    table.append(("total", sum(r.trials for r in rows), "", "", sum(r.total_epochs for r in rows), "",
                  f"{sum(hours):.2f}"))
    print(f"plan of sweep {spec.name} ({spec.source}): {len(rows)} cells; nothing has run or been written")
    print_table(table[0], table[1:])
    print(f"estimate, not a measurement: {steps} timed training steps of each network at its batch size on "
          f"{describe(device)}, every epoch counted as a FULL epoch plus a test pass")
