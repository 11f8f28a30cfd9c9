"""The grid of a sweep: its cells (models x client counts x partitions), each one Optuna study with
the RunConfig fields every one of its trials shares, read from [sweep.cells], [sweep.fixed] and
[sweep.models.<model>] (the format: bench/spec.py)."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

from bench import space
from bench.config import BASELINE, RunConfig
from bench.errors import UsageError
from bench.registry import unknown_name_message
from bench.space import listed, subtable

PARTITION_FIELDS = ("partition", "partition_alpha", "classes_per_client", "partition_min_samples")
# Fields a cell or a trial decides; every other RunConfig field may be fixed by the spec.
DECIDED = ("model", "clients", "policy", "policy_args", "quant_up", "quant_up_args", "quant_down", "quant_down_args",
            "data_dir", "seed")
FIXABLE = [f.name for f in dataclasses.fields(RunConfig) if f.name not in DECIDED]


@dataclass(frozen=True)
class Cell:
    """One grid cell: its study name and the RunConfig fields every one of its trials shares."""

    study: str
    fields: tuple[tuple[str, Any], ...]
    seeds: tuple[int, ...] = (0,)

    def params(self) -> dict[str, Any]:
        return dict(self.fields)

    def config(self, data_dir: str | None = None, **choice) -> RunConfig:
        """The run of one trial (its first seed): the cell's fields plus what the trial chose (the baseline by default)."""
        return RunConfig(**(self.params() | BASELINE | choice), data_dir=data_dir, seed=self.seeds[0])


def cells(sweep: str, table: dict, seeds: tuple[int, ...]) -> tuple[Cell, ...]:
    from bench import models

    grid = subtable(table, "sweep", "cells")
    space.known("sweep.cells", grid, ["models", "clients", "partitions"])
    names = listed(grid, "sweep.cells", "models", str)
    for m in names:
        if m not in models.MODELS:
            raise UsageError(unknown_name_message("sweep.cells.models", m, list(models.MODELS)))
    clients = listed(grid, "sweep.cells", "clients", int)
    if any(c < 1 for c in clients):
        raise UsageError(f"sweep.cells.clients: every count must be >= 1, got {clients}")
    fixed = fields_of("sweep.fixed", subtable(table, "sweep", "fixed"))
    per_model = subtable(table, "sweep", "models")
    for m in per_model:
        if m not in names:
            raise UsageError(unknown_name_message("sweep.models", m, names) + "; a model's table needs it in sweep.cells.models")
    partitions = _partitions(grid)
    cells = []
    for model, n, (i, part) in itertools.product(names, clients, enumerate(partitions)):
        origin = {k: "sweep.fixed" for k in fixed}
        own = fields_of(f"sweep.models.{model}", subtable(per_model, "sweep.models", model))
        origin |= {k: f"sweep.models.{model}" for k in own} | {k: f"sweep.cells.partitions[{i}]" for k in (PARTITION_FIELDS if part else ())}
        fields = {"model": model, "clients": n} | fixed | own | part
        suffix = f"-{_partition_name(part)}" if part else ""
        cell = Cell(f"{sweep}/{model}-c{n}{suffix}", tuple(sorted(fields.items())), seeds)
        try:
            cell.config()
        except UsageError as exc:
            raise located(exc, origin) from None
        cells.append(cell)
    return tuple(cells)


def _partitions(grid: dict) -> list[dict[str, Any]]:
    """The grid's partition axis: one table of partition fields per entry ([{}]: no axis)."""
    if "partitions" not in grid:
        return [{}]
    raw = grid["partitions"]
    if not isinstance(raw, list) or not raw or not all(isinstance(t, dict) and t for t in raw):
        raise UsageError(f"sweep.cells.partitions: expected a non-empty list of tables such as "
                         f"{{ partition = \"dirichlet\", partition_alpha = 0.5 }}, got {raw!r}")
    names = []
    for i, table in enumerate(raw):
        for key in table:
            if key not in PARTITION_FIELDS:
                raise UsageError(unknown_name_message(f"sweep.cells.partitions[{i}].{key}", key, list(PARTITION_FIELDS)))
        names.append(_partition_name(table))
    if len(set(names)) != len(names):
        raise UsageError(f"sweep.cells.partitions: lists a partition twice, got {names}")
    return [dict(t) for t in raw]


def _partition_name(part: dict[str, Any]) -> str:
    """The short name a partition's cells end in: iid, dir0.1, cls2 (and -min20 for a floor given)."""
    kind = part.get("partition", "iid")
    name = {"dirichlet": f"dir{part.get('partition_alpha')}", "classes": f"cls{part.get('classes_per_client')}"}
    out = name.get(kind, str(kind))
    return out + (f"-min{part['partition_min_samples']}" if "partition_min_samples" in part else "")


def fields_of(path: str, table: dict) -> dict[str, Any]:
    """RunConfig fields from a table, TOML lists turned into the tuples RunConfig holds."""
    for key in table:
        if key not in FIXABLE:
            hint = " (sweep.seeds decides it)" if key == "seed" else " (a cell or trial decides it)" if key in DECIDED else ""
            raise UsageError(unknown_name_message(f"{path}.{key}", key, FIXABLE) + hint)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}


def located(exc: UsageError, origin: dict[str, str]) -> UsageError:
    """RunConfig's `field: ...` message with the field named by where the spec set it."""
    field, sep, rest = str(exc).partition(":")
    name = field.removeprefix("policy.")
    for direction in ("quant_up", "quant_down"):  # a codec's argument, by its table in the spec
        name = name.replace(f"{direction}.", f"{direction}_args.", 1) if name.startswith(f"{direction}.") else name
    return UsageError(f"{origin[field]}.{name}:{rest}") if sep and field in origin else exc
