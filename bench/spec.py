"""SweepSpec: a sweep as one frozen, validated value, read from a TOML file.

A spec file has one table, [sweep] (bench/sweeps/*.toml are the shipped ones):

    [sweep]
    name = "quick"              # MLflow experiment and study prefix (default: the file's stem)
    trials = 6                  # per cell, the always/fp32 baseline included
    sampler = "tpe"             # "tpe" (multi-objective TPE) or "nsga2" (NSGA-II)
    seed = 0                    # the samplers' seed
    seeds = [0, 1]              # every setting is trained once per seed (default [0]); objectives are means
                                # or { min = 3, max = 8 }: seeds 0, 1, ... until decided (adaptive seeds)
    margin_pp = 0.5             # the non-inferiority margin of the verdicts, accuracy points (default 0.5)
    save_model = false          # every trial logs its client and server weights

    [sweep.cells]               # the grid: one cell (one Optuna study) per model x clients (x partition)
    models = ["smallcnn", "vgg11"]
    clients = [1, 2]
    partitions = [{ partition = "iid" }, { partition = "dirichlet", partition_alpha = 0.1 }]  # optional

    [sweep.fixed]               # RunConfig fields of every trial (dataset, cut, epochs, subsets, ...)
    [sweep.models.vgg11]        # RunConfig fields of one model's cells, over [sweep.fixed]

    [sweep.search]              # what a trial may choose
    policies = ["always", "periodic", "loss_threshold"]
    quant_up = ["fp32", "fp8_e4m3"]
    quant_down = ["fp32", "fp8_e5m2"]
    [sweep.search.ranges.loss_threshold]   # overrides of a policy's declared search_space
    threshold = { low = 0.01, high = 0.3, log = true }
    [sweep.search.codec_ranges.fp8_e4m3]   # additions to or overrides of a codec's declared search_space
    rounding = { choices = ["nearest", "stochastic"] }

    [[sweep.settings]]          # exact settings, run after the baseline and before the sampler's
    policy = "loss_threshold"   # trials (fields not given take the policy's defaults)
    args = { threshold = 0.02 }
    quant_up = "fp8_e4m3"
    quant_down = "fp8_e5m2"
    cache_mixup = 0.2           # any [sweep.fixed] field: this setting's own value, over the cell's

A codec's arguments are searched like a policy's fields, in both directions where it is listed;
an explicit setting's codecs take their default arguments. An explicit setting may also set any
field [sweep.fixed] may (an engine option such as cache_views or val_fraction): such a setting is
outside the search space, and the sampler never proposes it.

The baseline (policy always, fp32 both ways) is always part of the search space: it is the first
trial of every study (listed among the settings or not). The explicit settings' policies and
codecs join the search space too. A
spec may list settings and no [sweep.search]; `trials` then defaults to the baseline plus the
settings. A sampled float is rounded before it is trained (a log range to 2 significant digits,
a linear one to a hundredth of the range's order of magnitude), so near-identical proposals are
one setting (Range.round). Everything is checked here, before any trial starts: a bad value is a
UsageError of one line naming the field by its path in the file, e.g.
`sweep.cells.models: unknown name 'vgg12'; did you mean 'vgg11'?`.

`partitions` makes the partition of the training set a third axis of the grid: each entry is a
table of the partition fields (PARTITION_FIELDS), and its cells' study names end in its short name
(`-iid`, `-dir0.1`, `-cls2`). Without it the partition is a field like any other ([sweep.fixed]:
`partition = "dirichlet"`, `partition_alpha = 0.5`) and study names are `<model>-c<clients>`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.errors import UsageError
from bench.registry import unknown_name_message

SHIPPED = Path(__file__).parent / "sweeps"
PARTITION_FIELDS = ("partition", "partition_alpha", "classes_per_client", "partition_min_samples")
SAMPLERS = ("tpe", "nsga2")
BASELINE = {"policy": "always", "quant_up": "fp32", "quant_down": "fp32"}
# Fields a cell or a trial decides; every other RunConfig field may be fixed by the spec.
_DECIDED = ("model", "clients", "policy", "policy_args", "quant_up", "quant_up_args", "quant_down", "quant_down_args",
            "data_dir", "seed")
_FIXABLE = [f.name for f in dataclasses.fields(RunConfig) if f.name not in _DECIDED]
_KEYS = {
    "sweep": ["name", "description", "trials", "sampler", "seed", "seeds", "margin_pp", "save_model", "cells", "fixed",
              "models", "search", "settings"],
    "sweep.settings": ["policy", "args", "quant_up", "quant_down", *_FIXABLE],
    "sweep.cells": ["models", "clients", "partitions"],
    "sweep.search": ["policies", "quant_up", "quant_down", "ranges", "codec_ranges"],
}


@dataclass(frozen=True)
class Range:
    """One policy field's search range: a float/int interval (log-scaled or not), or choices."""

    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple | None = None

    @property
    def is_float(self) -> bool:
        return self.choices is None and not (isinstance(self.low, int) and isinstance(self.high, int))

    def round(self, value):
        """A float to the precision that matters: 2 significant digits on a log range, else steps
        of 1/100 of the range's order of magnitude. Other values as they are."""
        if not self.is_float or value == 0:
            return value
        if self.log:
            return float(f"{value:.2g}")
        return round(round(value / self._step()) * self._step(), 12)

    def size(self) -> int:
        """How many distinct values the range holds once rounded."""
        if self.choices is not None:
            return len(self.choices)
        if not self.is_float:
            return self.high - self.low + 1
        low, high = self.round(self.low), self.round(self.high)
        if not self.log:
            return round((high - low) / self._step()) + 1
        decades = range(math.floor(math.log10(low)), math.floor(math.log10(high)) + 1)
        return sum(low <= float(f"{m}e{d - 1}") <= high for d in decades for m in range(10, 100))

    def contains(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        return self.low <= value <= self.high and value == self.round(value)

    def _step(self) -> float:
        width = self.high - self.low
        return 10.0 ** (math.floor(math.log10(width)) - 2) if width > 0 else 1.0


@dataclass(frozen=True)
class Setting:
    """One exact setting of a trial: a policy with its arguments, the two codecs, and RunConfig
    fields of its own (`fields`, over the cell's)."""

    policy: str
    args: tuple[tuple[str, Any], ...]
    quant_up: str
    quant_down: str
    fields: tuple[tuple[str, Any], ...] = ()

    def choice(self) -> dict[str, Any]:
        return {"policy": self.policy, "policy_args": self.args, "quant_up": self.quant_up,
                "quant_down": self.quant_down} | dict(self.fields)


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


@dataclass(frozen=True)
class SweepSpec:
    name: str
    source: str  # the file it was read from
    text: str  # the file's text, logged with every study
    trials: int
    sampler: str
    seed: int
    save_model: bool
    cells: tuple[Cell, ...]
    policies: tuple[str, ...]
    quant_up: tuple[str, ...]
    quant_down: tuple[str, ...]
    ranges: tuple[tuple[str, tuple[tuple[str, Range], ...]], ...]  # policy -> its fields' ranges
    seeds: tuple[int, ...] = (0,)
    settings: tuple[Setting, ...] = ()  # explicit, the baseline left out
    codec_ranges: tuple[tuple[str, tuple[tuple[str, Range], ...]], ...] = ()  # codec -> its arguments' ranges
    # Adaptive seeds: a setting stops after any seed from the seeds_min-th on once its verdict is
    # decided (reports/noise.py); `seeds` then lists every seed it may train (0 .. max - 1).
    seeds_min: int | None = None
    margin_pp: float = 0.5

    def plan_params(self) -> dict[str, int]:
        """The params an adaptive trial logs (seeds_min, seeds_max); none for a fixed seed list."""
        return {} if self.seeds_min is None else {"seeds_min": self.seeds_min, "seeds_max": len(self.seeds)}

    def space(self, policy: str) -> dict[str, Range]:
        return dict(dict(self.ranges)[policy])

    def codec_space(self, codec: str) -> dict[str, Range]:
        return dict(dict(self.codec_ranges)[codec])

    def fixed_params(self, setting: Setting) -> dict[str, Any]:
        """An explicit setting as Optuna params: every searched field of its policy, given or default,
        every field it gives, and every searched argument of its codecs at its default; its own
        fields as `field.<name>`. Params the sampler never suggests (a field outside the search
        space, `field.*`) still tell settings apart that share what is searched."""
        from policies import POLICIES
        from quantizers import QUANTIZERS

        given = dict(setting.args)
        default = POLICIES.get(setting.policy)()
        params = {"policy": setting.policy}
        params |= {f"{setting.policy}.{f}": given.get(f, getattr(default, f)) for f in self.space(setting.policy)}
        params |= {f"{setting.policy}.{f}": v for f, v in given.items()}
        for direction in ("quant_up", "quant_down"):
            codec = getattr(setting, direction)
            params[direction] = codec
            params |= {f"{direction}.{codec}.{f}": getattr(QUANTIZERS.get(codec)(), f) for f in self.codec_space(codec)}
        return params | {f"field.{k}": v for k, v in setting.fields}

    def size(self) -> int:
        """How many distinct settings a cell can run: the search space (rounded) and the explicit
        settings outside it."""
        searched = sum(math.prod(r.size() for r in self.space(p).values()) for p in self.policies)
        for codecs in (self.quant_up, self.quant_down):
            searched *= sum(math.prod(r.size() for r in self.codec_space(c).values()) for c in codecs)
        outside = sum(not self._searched(s) for s in self.settings)
        return searched + outside

    def _searched(self, setting: Setting) -> bool:
        if setting.fields:
            return False
        params = self.fixed_params(setting)
        spaces = {setting.policy: self.space(setting.policy)} | {
            f"{d}.{getattr(setting, d)}": self.codec_space(getattr(setting, d)) for d in ("quant_up", "quant_down")}
        return set(dict(setting.args)) <= set(self.space(setting.policy)) and all(
            rng.contains(params[f"{prefix}.{f}"]) for prefix, space in spaces.items() for f, rng in space.items())


def shipped() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """A path to an existing file, or the name of a spec shipped in bench/sweeps/."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix == ".toml" or "/" in name_or_path:
        raise UsageError(f"spec: no such file {name_or_path!r}")
    if not (SHIPPED / f"{name_or_path}.toml").is_file():
        raise UsageError(unknown_name_message("spec", name_or_path, shipped()))
    return SHIPPED / f"{name_or_path}.toml"


def load(name_or_path: str) -> SweepSpec:
    """The validated spec; the policy and codec registries must hold every plugin it names."""
    path = resolve(name_or_path)
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"spec {path}: not valid TOML ({exc})") from None
    if set(raw) != {"sweep"}:
        raise UsageError(f"spec {path}: expected one table [sweep], found {', '.join(sorted(raw)) or 'nothing'}")
    return parse(raw["sweep"], name=path.stem, source=str(path), text=text)


def parse(table: dict, *, name: str, source: str = "", text: str = "") -> SweepSpec:
    _known_keys("sweep", table)
    name = _get(table, "sweep", "name", str, name)
    if not name or "/" in name:
        raise UsageError(f"sweep.name: must be a non-empty name without '/', got {name!r}")
    sampler = _get(table, "sweep", "sampler", str, "tpe")
    if sampler not in SAMPLERS:
        raise UsageError(unknown_name_message("sweep.sampler", sampler, list(SAMPLERS)))
    seeds, seeds_min = _seed_plan(table.get("seeds", [0]))
    margin_pp = table.get("margin_pp", 0.5)
    if not isinstance(margin_pp, (int, float)) or isinstance(margin_pp, bool) or margin_pp < 0:
        raise UsageError(f"sweep.margin_pp: must be a number >= 0, got {margin_pp!r}")
    cells = _cells(name, table, seeds)
    settings = _settings(table.get("settings", []), cells[0])
    policies, ups, downs, ranges, codec_ranges = _search(_table(table, "sweep", "search"), settings)
    least = 1 + len(settings)
    trials = _get(table, "sweep", "trials", int, least if settings else None)
    if trials is None or trials < least:
        what = f" (the baseline and {len(settings)} explicit setting(s))" if settings else ""
        raise UsageError(f"sweep.trials: must be an integer >= {least}{what}, got {trials!r}")
    return SweepSpec(
        name=name, source=source, text=text, trials=trials, sampler=sampler,
        seed=_get(table, "sweep", "seed", int, 0), save_model=_get(table, "sweep", "save_model", bool, False),
        cells=cells, policies=policies, quant_up=ups, quant_down=downs, ranges=ranges, seeds=seeds,
        settings=settings, codec_ranges=codec_ranges, seeds_min=seeds_min, margin_pp=float(margin_pp),
    )


def _seed_plan(raw: Any) -> tuple[tuple[int, ...], int | None]:
    """(seeds, seeds_min): a list of seeds as it is, or { min = A, max = B } as seeds 0 .. B - 1 with
    seeds_min A (2 <= A <= B: a verdict needs two paired seeds)."""
    from bench.record import check_seeds

    if not isinstance(raw, dict):
        return check_seeds("sweep.seeds", raw), None
    if set(raw) != {"min", "max"}:
        raise UsageError(f"sweep.seeds: adaptive seeds are {{ min = A, max = B }}, got keys {sorted(raw)}")
    low, high = raw["min"], raw["max"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) or not 2 <= low <= high:
        raise UsageError(f"sweep.seeds: needs integers 2 <= min <= max, got min = {low!r}, max = {high!r}")
    return tuple(range(high)), low


def _settings(raw: Any, cell: Cell) -> tuple[Setting, ...]:
    """The explicit settings but the baseline, each checked by building its run; a repeat is rejected."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise UsageError(f"sweep.settings: expected [[sweep.settings]] tables, got {raw!r}")
    out, seen = [], []
    for i, table in enumerate(raw):
        path = f"sweep.settings[{i}]"
        _known_keys("sweep.settings", table, path)
        policy = _get(table, path, "policy", str, None)
        if policy is None:
            raise UsageError(f"{path}.policy: missing; name a policy")
        args = _table(table, path, "args")
        fields = _fields(path, {k: v for k, v in table.items() if k in _FIXABLE})
        choice = {"policy": policy, "policy_args": tuple(args.items()),
                  "quant_up": _get(table, path, "quant_up", str, "fp32"),
                  "quant_down": _get(table, path, "quant_down", str, "fp32")} | fields
        try:
            cfg = cell.config(**choice)
        except UsageError as exc:
            raise located(exc, {"policy": path, "quant_up": path, "quant_down": path}
                          | {f"policy.{k}": f"{path}.args" for k in args} | {k: path for k in _FIXABLE}) from None
        setting = Setting(cfg.policy, cfg.policy_args, cfg.quant_up, cfg.quant_down, tuple(sorted(fields.items())))
        if cfg.to_params() in seen:  # compared with the policy's defaults filled in
            raise UsageError(f"{path}: repeats an earlier setting, {setting.policy} {dict(setting.args)} "
                             f"{setting.quant_up}/{setting.quant_down}" + "".join(f" {k}={v}" for k, v in fields.items()))
        seen.append(cfg.to_params())
        if cfg.to_params() != cell.config().to_params():  # the baseline runs first anyway
            out.append(setting)
    return tuple(out)


def _cells(sweep: str, table: dict, seeds: tuple[int, ...]) -> tuple[Cell, ...]:
    from bench import models

    grid = _table(table, "sweep", "cells")
    _known_keys("sweep.cells", grid)
    names = _list(grid, "sweep.cells", "models", str)
    for m in names:
        if m not in models.MODELS:
            raise UsageError(unknown_name_message("sweep.cells.models", m, list(models.MODELS)))
    clients = _list(grid, "sweep.cells", "clients", int)
    if any(c < 1 for c in clients):
        raise UsageError(f"sweep.cells.clients: every count must be >= 1, got {clients}")
    fixed = _fields("sweep.fixed", _table(table, "sweep", "fixed"))
    per_model = _table(table, "sweep", "models")
    for m in per_model:
        if m not in names:
            raise UsageError(unknown_name_message("sweep.models", m, names) + "; a model's table needs it in sweep.cells.models")
    partitions = _partitions(grid)
    cells = []
    for model, n, (i, part) in itertools.product(names, clients, enumerate(partitions)):
        origin = {k: "sweep.fixed" for k in fixed}
        own = _fields(f"sweep.models.{model}", _table(per_model, "sweep.models", model))
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


def _fields(path: str, table: dict) -> dict[str, Any]:
    """RunConfig fields from a table, TOML lists turned into the tuples RunConfig holds."""
    for key in table:
        if key not in _FIXABLE:
            hint = " (sweep.seeds decides it)" if key == "seed" else " (a cell or trial decides it)" if key in _DECIDED else ""
            raise UsageError(unknown_name_message(f"{path}.{key}", key, _FIXABLE) + hint)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}


def located(exc: UsageError, origin: dict[str, str]) -> UsageError:
    """RunConfig's `field: ...` message with the field named by where the spec set it."""
    field, sep, rest = str(exc).partition(":")
    name = field.removeprefix("policy.") if field.startswith("policy.") else field
    return UsageError(f"{origin[field]}.{name}:{rest}") if sep and field in origin else exc


def _search(table: dict, settings: tuple[Setting, ...]):
    """The search lists (the baseline's and the explicit settings' names always in them) and ranges."""
    from policies import POLICIES
    from quantizers import QUANTIZERS

    _known_keys("sweep.search", table)
    picked = {}
    for key, registry, base in (("policies", POLICIES, "always"), ("quant_up", QUANTIZERS, "fp32"),
                                ("quant_down", QUANTIZERS, "fp32")):
        names = _list(table, "sweep.search", key, str) if key in table or not settings else []
        for n in names:
            if n not in registry:
                raise UsageError(unknown_name_message(f"sweep.search.{key}", n, registry.names()))
        named = [getattr(s, "policy" if key == "policies" else key) for s in settings]
        picked[key] = tuple(dict.fromkeys([base, *names, *named]))
    overrides = _table(table, "sweep.search", "ranges")
    for policy in overrides:
        if policy not in picked["policies"]:
            raise UsageError(unknown_name_message("sweep.search.ranges", policy, list(picked["policies"])))
    ranges = tuple((p, _ranges(f"sweep.search.ranges.{p}", POLICIES.get(p),
                               _table(overrides, "sweep.search.ranges", p)))
                   for p in picked["policies"])
    codecs = list(dict.fromkeys(picked["quant_up"] + picked["quant_down"]))
    codec_overrides = _table(table, "sweep.search", "codec_ranges")
    for codec in codec_overrides:
        if codec not in codecs:
            raise UsageError(unknown_name_message("sweep.search.codec_ranges", codec, codecs))
    codec_ranges = tuple((c, _ranges(f"sweep.search.codec_ranges.{c}", QUANTIZERS.get(c),
                                     _table(codec_overrides, "sweep.search.codec_ranges", c)))
                         for c in codecs)
    return picked["policies"], picked["quant_up"], picked["quant_down"], ranges, codec_ranges


def _ranges(prefix: str, cls, overrides: dict) -> tuple[tuple[str, Range], ...]:
    """A policy's or codec's declared search_space with the spec's overrides, every bound checked by the class."""
    from quantizers import arguments

    fields = [f.name for f in arguments(cls)]
    out = {}
    for field, raw in (dict(getattr(cls, "search_space", {})) | overrides).items():
        path = f"{prefix}.{field}"
        if field not in fields:
            raise UsageError(unknown_name_message(path, field, fields))
        rng = _range(path, raw)
        for value in rng.choices or (rng.low, rng.high):
            try:
                cls(**{field: value})
            except UsageError as exc:
                raise UsageError(f"{path}: {value!r} is not allowed ({exc})") from None
        out[field] = rng
    return tuple(sorted(out.items()))


def _range(path: str, raw: Any) -> Range:
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a table {{low, high, log}} or {{choices}}, got {raw!r}")
    for key in raw:
        if key not in ("low", "high", "log", "choices"):
            raise UsageError(unknown_name_message(f"{path}.{key}", key, ["low", "high", "log", "choices"]))
    if "choices" in raw:
        if set(raw) != {"choices"} or not isinstance(raw["choices"], list) or not raw["choices"]:
            raise UsageError(f"{path}: choices must be a non-empty list, alone, got {raw!r}")
        return Range(choices=tuple(raw["choices"]))
    low, high, log = raw.get("low"), raw.get("high"), raw.get("log", False)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise UsageError(f"{path}: low and high must both be numbers, got low={low!r} high={high!r}")
    if not low <= high:
        raise UsageError(f"{path}: low must be <= high, got low={low!r} high={high!r}")
    if not isinstance(log, bool) or (log and low <= 0):
        raise UsageError(f"{path}: log must be true or false, and a log range needs low > 0, got log={log!r} low={low!r}")
    return Range(low=low, high=high, log=log)


def _known_keys(path: str, table: dict, shown: str | None = None) -> None:
    for key in table:
        if key not in _KEYS[path]:
            raise UsageError(unknown_name_message(f"{shown or path}.{key}", key, _KEYS[path]))


def _table(table: dict, path: str, key: str) -> dict:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{path}.{key}: expected a table, got {value!r}")
    return value


def _list(table: dict, path: str, key: str, kind: type) -> list:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise UsageError(f"{path}.{key}: expected a non-empty list of {kind.__name__}, got {value!r}")
    if len(set(value)) != len(value):
        raise UsageError(f"{path}.{key}: lists a value twice, got {value!r}")
    return value


def _get(table: dict, path: str, key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise UsageError(f"{path}.{key}: expected {kind.__name__}, got {value!r}")
    return value
