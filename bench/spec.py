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

    [sweep.search.fields]                  # RunConfig fields a trial chooses (bench/space.py)
    cache_mixup = { choices = [0.0, 0.2] }

    [[sweep.settings]]          # exact settings, run after the baseline and before the sampler's
    policy = "loss_threshold"   # trials (fields not given take the policy's defaults)
    args = { threshold = 0.02 }
    quant_up = "fp8_e4m3"
    quant_up_args = { rounding = "stochastic" }   # the codecs' arguments (default: theirs)
    quant_down = "fp8_e5m2"
    cache_mixup = 0.2           # any [sweep.fixed] field: this setting's own value, over the cell's

    objectives = "paired"       # in [sweep]: reduction and paired difference, the verdict as the
    ablation = true             # sampler's constraint; then an ablation of the best feasible setting

A codec's arguments are searched like a policy's fields, in both directions where it is listed;
an explicit setting's codecs take their default arguments unless it gives `quant_up_args` /
`quant_down_args`. An explicit setting may also set any
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
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import config, grid, space
from bench.config import BASELINE
from bench.errors import UsageError
from bench.registry import unknown_name_message
from bench.grid import FIXABLE, Cell, fields_of, located
from bench.space import Range, subtable as _table

SHIPPED = Path(__file__).parent / "sweeps"
SAMPLERS = ("tpe", "nsga2")
# What a trial reports to the sampler: "absolute" (maximize final/test_acc, minimize final/comm_bytes),
# or "paired" (maximize the reduction against the baseline and the paired accuracy difference, with
# the verdict at the margin as the sampler's constraint: bench/tuning.py).
OBJECTIVES = ("absolute", "paired")
_KEYS = {
    "sweep": ["name", "description", "trials", "sampler", "seed", "seeds", "margin_pp", "save_model", "objectives",
              "ablation", "cells", "fixed", "models", "search", "settings"],
    "sweep.settings": ["policy", "args", "quant_up", "quant_down", "quant_up_args", "quant_down_args", *FIXABLE],
}


def _known_keys(path: str, table: dict, shown: str | None = None) -> None:
    space.known(path, table, _KEYS[path], shown)


@dataclass(frozen=True)
class Setting:
    """One exact setting of a trial: a policy with its arguments, the two codecs with theirs, and
    RunConfig fields of its own (`fields`, over the cell's)."""

    policy: str
    args: tuple[tuple[str, Any], ...]
    quant_up: str
    quant_down: str
    fields: tuple[tuple[str, Any], ...] = ()
    quant_up_args: tuple[tuple[str, Any], ...] = ()
    quant_down_args: tuple[tuple[str, Any], ...] = ()

    def choice(self) -> dict[str, Any]:
        codec_args = {f"{d}_args": getattr(self, f"{d}_args") for d in ("quant_up", "quant_down") if getattr(self, f"{d}_args")}
        return {"policy": self.policy, "policy_args": self.args, "quant_up": self.quant_up,
                "quant_down": self.quant_down} | codec_args | dict(self.fields)

    @classmethod
    def of(cls, choice: dict[str, Any]) -> "Setting":
        """The setting of a trial's choice (tuning.choice): its RunConfig fields besides the policy
        and codecs become the setting's own."""
        from bench import ablation

        c = ablation.normal(choice)
        return cls(c["policy"], c["policy_args"], c["quant_up"], c["quant_down"], tuple(sorted(ablation.fields(c).items())),
                   c["quant_up_args"], c["quant_down_args"])

    def without_inert(self) -> "Setting":
        """The same setting less the fields that cannot act under its policy (config.inert)."""
        inert = config.inert(self.policy)
        return dataclasses.replace(self, fields=tuple((k, v) for k, v in self.fields if k not in inert))

    def describe(self) -> str:
        """One line: `loss_threshold threshold=0.1 fp8_e4m3/topk(k=0.05) cache_mixup=0.2`."""
        def args(pairs):
            return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in pairs)

        codecs = "/".join(c + (f"({args(a)})" if a else "") for c, a in
                          ((self.quant_up, self.quant_up_args), (self.quant_down, self.quant_down_args)))
        own = " ".join(f"{k}={v}" for k, v in self.fields)
        return " ".join(x for x in (self.policy, args(self.args).replace(", ", " "), codecs, own) if x)


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
    fields: tuple[tuple[str, Range], ...] = ()  # RunConfig fields a trial chooses -> their ranges
    objectives: str = "absolute"  # OBJECTIVES: what each trial reports to the sampler
    ablation: bool = False  # after the search, each cell ablates its best feasible setting (bench/ablation.py)

    def plan_params(self) -> dict[str, int]:
        """The params an adaptive trial logs (seeds_min, seeds_max); none for a fixed seed list."""
        return {} if self.seeds_min is None else {"seeds_min": self.seeds_min, "seeds_max": len(self.seeds)}

    def space(self, policy: str) -> dict[str, Range]:
        return dict(dict(self.ranges)[policy])

    def codec_space(self, codec: str) -> dict[str, Range]:
        return dict(dict(self.codec_ranges)[codec])

    def fixed_params(self, setting: Setting, cell: Cell | None = None) -> dict[str, Any]:
        """An explicit setting as Optuna params: every searched field of its policy and its codecs,
        given or default, and every one it gives; every searched RunConfig field (`field.<name>`),
        its own value or the cell's (the first cell's by default), and every field it gives. Params
        the sampler never suggests still tell settings apart that share what is searched."""
        from policies import POLICIES

        given = dict(setting.args)
        default = POLICIES.get(setting.policy)()
        params = {"policy": setting.policy}
        params |= {f"{setting.policy}.{f}": given.get(f, getattr(default, f)) for f in self.space(setting.policy)}
        params |= {f"{setting.policy}.{f}": v for f, v in given.items()}
        for direction in ("quant_up", "quant_down"):
            codec, own = getattr(setting, direction), dict(getattr(setting, f"{direction}_args"))
            params[direction] = codec
            params |= {f"{direction}.{codec}.{f}": own.get(f, codec_default(codec, f)) for f in self.codec_space(codec)}
            params |= {f"{direction}.{codec}.{f}": v for f, v in own.items()}
        base = (cell or self.cells[0]).config()
        params |= {f"field.{k}": getattr(base, k) for k, _ in self.fields}
        return params | {f"field.{k}": v for k, v in setting.fields}

    def size(self) -> int:
        """How many distinct settings a cell can run: the search space (rounded) and the explicit
        settings outside it."""
        searched = sum(math.prod(r.size() for r in self.space(p).values())
                       * math.prod(r.size() for f, r in self.fields if f not in config.inert(p)) for p in self.policies)
        for codecs in (self.quant_up, self.quant_down):
            searched *= sum(math.prod(r.size() for r in self.codec_space(c).values()) for c in codecs)
        outside = {c for c in (s.without_inert() for s in self.settings) if not self._searched(c)}
        return searched + len(outside)

    def _searched(self, setting: Setting) -> bool:
        spaces = {setting.policy: self.space(setting.policy)} | {
            f"{d}.{getattr(setting, d)}": self.codec_space(getattr(setting, d)) for d in ("quant_up", "quant_down")}
        spaces["field"] = dict(self.fields)
        given = {setting.policy: setting.args, "field": setting.fields} | {
            f"{d}.{getattr(setting, d)}": getattr(setting, f"{d}_args") for d in ("quant_up", "quant_down")}
        if any(not set(dict(pairs)) <= set(spaces[prefix]) for prefix, pairs in given.items()):
            return False
        params = self.fixed_params(setting)
        return all(rng.contains(params[f"{prefix}.{f}"]) for prefix, space in spaces.items() for f, rng in space.items())


def codec_default(codec: str, arg: str) -> Any:
    """A codec's default value of one of its arguments or of a stage argument (error_feedback, entropy)."""
    from quantizers import QUANTIZERS
    from quantizers.wrappers import STAGE_NAMES, Stages

    return getattr(Stages() if arg in STAGE_NAMES else QUANTIZERS.get(codec)(), arg)


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
    objectives = _get(table, "sweep", "objectives", str, "absolute")
    if objectives not in OBJECTIVES:
        raise UsageError(unknown_name_message("sweep.objectives", objectives, list(OBJECTIVES)))
    ablation = _get(table, "sweep", "ablation", bool, False)
    if ablation and objectives != "paired":
        raise UsageError("sweep.ablation: needs objectives = \"paired\" (it ablates the best feasible setting)")
    cells = grid.cells(name, table, seeds)
    settings = _settings(table.get("settings", []), cells[0])
    searched = space.search(_table(table, "sweep", "search"), settings, cells[0], FIXABLE)
    if ablation:
        _check_ablation(searched, cells[0])
    least = 1 + len(settings)
    trials = _get(table, "sweep", "trials", int, least if settings else None)
    if trials is None or trials < least:
        what = f" (the baseline and {len(settings)} explicit setting(s))" if settings else ""
        raise UsageError(f"sweep.trials: must be an integer >= {least}{what}, got {trials!r}")
    return SweepSpec(
        name=name, source=source, text=text, trials=trials, sampler=sampler,
        seed=_get(table, "sweep", "seed", int, 0), save_model=_get(table, "sweep", "save_model", bool, False),
        cells=cells, policies=searched.policies, quant_up=searched.quant_up, quant_down=searched.quant_down,
        ranges=searched.ranges, seeds=seeds, settings=settings, codec_ranges=searched.codec_ranges, seeds_min=seeds_min,
        margin_pp=float(margin_pp), fields=searched.fields, objectives=objectives, ablation=ablation,
    )


def _check_ablation(searched: space.Space, cell: Cell) -> None:
    """An ablation step sets a part back to its reference (bench/ablation.py): the reference must be
    a value the search's choices hold, or the sampler could not be told the step's params."""
    from bench.ablation import REFERENCE_CODECS

    for direction, codec in REFERENCE_CODECS.items():
        if codec not in getattr(searched, direction):
            raise UsageError(f"sweep.search.{direction}: with ablation it must list {codec} (the step back to "
                             "the paper's format)")
    base = cell.config()
    for field, rng in searched.fields:
        if rng.choices is not None and getattr(base, field) not in rng.choices:
            raise UsageError(f"sweep.search.fields.{field}: with ablation its choices must hold the cell's value "
                             f"{getattr(base, field)!r} (the step that takes it away)")


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
        codec_args = {f"{d}_args": tuple(sorted(_table(table, path, f"{d}_args").items())) for d in ("quant_up", "quant_down")}
        fields = fields_of(path, {k: v for k, v in table.items() if k in FIXABLE})
        choice = {"policy": policy, "policy_args": tuple(args.items()),
                  "quant_up": _get(table, path, "quant_up", str, BASELINE["quant_up"]),
                  "quant_down": _get(table, path, "quant_down", str, BASELINE["quant_down"])} | codec_args | fields
        try:
            cfg = cell.config(**choice)
        except UsageError as exc:
            raise located(exc, {"policy": path, "quant_up": path, "quant_down": path}
                          | {f"policy.{k}": f"{path}.args" for k in args} | {k: path for k in FIXABLE}
                          | {f"{d[:-5]}.{k}": path for d, pairs in codec_args.items() for k, _ in pairs}) from None
        setting = Setting(cfg.policy, cfg.policy_args, cfg.quant_up, cfg.quant_down, tuple(sorted(fields.items())),
                          **codec_args)
        if cfg.to_params() in seen:  # compared with the policy's defaults filled in
            raise UsageError(f"{path}: repeats an earlier setting, {setting.policy} {dict(setting.args)} "
                             f"{setting.quant_up}/{setting.quant_down}" + "".join(f" {k}={v}" for k, v in fields.items()))
        seen.append(cfg.to_params())
        if cfg.to_params() != cell.config().to_params():  # the baseline runs first anyway
            out.append(setting)
    return tuple(out)


def _get(table: dict, path: str, key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise UsageError(f"{path}.{key}: expected {kind.__name__}, got {value!r}")
    return value
