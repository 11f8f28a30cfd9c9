"""What a sweep's trial may choose: the [sweep.search] table of a spec, read into ranges.

    [sweep.search]
    policies = ["always", "loss_threshold"]     # the gates
    quant_up = ["fp8_e4m3", "topk"]             # the up codec, and separately
    quant_down = ["fp8_e5m2", "mxfp6_e3m2"]     # the down codec
    [sweep.search.ranges.loss_threshold]        # overrides of a policy's declared search_space
    threshold = { low = 0.01, high = 0.3, log = true }
    [sweep.search.codec_ranges.topk]            # a codec's declared search_space, plus or overridden;
    k = { low = 0.01, high = 0.2, log = true }  # the stage arguments every codec takes (error_feedback,
    error_feedback = { choices = [false, true] }  # entropy) are searched where a spec names them
    [sweep.search.fields]                       # RunConfig fields a trial chooses (engine options)
    cache_mixup = { choices = [0.0, 0.2, 0.4] }
    refresh_threshold = { choices = ["off", 0.05] }   # "off": the field's None

Every range is a Range; Optuna sees each as a distribution (bench/tuning.py): a policy's field as
`<policy>.<field>`, a codec's argument as `quant_up.<codec>.<arg>`, a RunConfig field as
`field.<name>`, so the sampler learns from all of them. Each bound and choice is checked here, by
the class it belongs to (a policy, a codec, RunConfig on the first cell), with a one-line error
naming the field by its path in the spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.errors import UsageError
from bench.registry import unknown_name_message

OFF = "off"  # in a field's choices: None, the "off" value of fields such as refresh_threshold


@dataclass(frozen=True)
class Range:
    """One field's search range: a float/int interval (log-scaled or not), or choices."""

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
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        return self.low <= value <= self.high and value == self.round(value)

    def _step(self) -> float:
        width = self.high - self.low
        return 10.0 ** (math.floor(math.log10(width)) - 2) if width > 0 else 1.0


@dataclass(frozen=True)
class Space:
    """The search lists and ranges of a spec (each range keyed by its field, sorted)."""

    policies: tuple[str, ...]
    quant_up: tuple[str, ...]
    quant_down: tuple[str, ...]
    ranges: tuple[tuple[str, tuple[tuple[str, Range], ...]], ...]  # policy -> its fields' ranges
    codec_ranges: tuple[tuple[str, tuple[tuple[str, Range], ...]], ...]  # codec -> its arguments' ranges
    fields: tuple[tuple[str, Range], ...]  # RunConfig field -> its range


def search(table: dict, settings, cell, fixable: list[str]) -> Space:
    """The search lists (the baseline's and the explicit settings' names always in them) and ranges.
    `cell` checks the searched fields' values; `fixable` names the RunConfig fields a trial may set."""
    from bench.config import BASELINE
    from policies import POLICIES
    from quantizers import QUANTIZERS

    known("sweep.search", table, ["policies", "quant_up", "quant_down", "ranges", "codec_ranges", "fields"])
    picked = {}
    for key, registry, base in (("policies", POLICIES, BASELINE["policy"]), ("quant_up", QUANTIZERS, BASELINE["quant_up"]),
                                ("quant_down", QUANTIZERS, BASELINE["quant_down"])):
        names = listed(table, "sweep.search", key, str) if key in table or not settings else []
        for n in names:
            if n not in registry:
                raise UsageError(unknown_name_message(f"sweep.search.{key}", n, registry.names()))
        named = [getattr(s, "policy" if key == "policies" else key) for s in settings]
        picked[key] = tuple(dict.fromkeys([base, *names, *named]))
    overrides = subtable(table, "sweep.search", "ranges")
    for policy in overrides:
        if policy not in picked["policies"]:
            raise UsageError(unknown_name_message("sweep.search.ranges", policy, list(picked["policies"])))
    ranges = tuple((p, declared(f"sweep.search.ranges.{p}", POLICIES.get(p), subtable(overrides, "sweep.search.ranges", p)))
                   for p in picked["policies"])
    codecs = list(dict.fromkeys(picked["quant_up"] + picked["quant_down"]))
    codec_overrides = subtable(table, "sweep.search", "codec_ranges")
    for codec in codec_overrides:
        if codec not in codecs:
            raise UsageError(unknown_name_message("sweep.search.codec_ranges", codec, codecs))
    codec_ranges = tuple((c, declared(f"sweep.search.codec_ranges.{c}", QUANTIZERS.get(c),
                                      subtable(codec_overrides, "sweep.search.codec_ranges", c), stages=True))
                         for c in codecs)
    fields = _fields(subtable(table, "sweep.search", "fields"), settings, cell, fixable)
    return Space(picked["policies"], picked["quant_up"], picked["quant_down"], ranges, codec_ranges, fields)


def declared(prefix: str, cls, overrides: dict, stages: bool = False) -> tuple[tuple[str, Range], ...]:
    """A policy's or codec's declared search_space with the spec's overrides, every bound checked by
    the class (with `stages`, a codec: its stage arguments may be searched too, checked by Stages)."""
    from quantizers import arguments
    from quantizers.wrappers import STAGE_NAMES, Stages

    fields = [f.name for f in arguments(cls)] + (sorted(STAGE_NAMES) if stages else [])
    out = {}
    for field, raw in (dict(getattr(cls, "search_space", {})) | overrides).items():
        path = f"{prefix}.{field}"
        if field not in fields:
            raise UsageError(unknown_name_message(path, field, fields))
        rng = parse_range(path, raw)
        checker = Stages if stages and field in STAGE_NAMES else cls
        _check(path, rng, lambda value: checker(**{field: value}))
        out[field] = rng
    return tuple(sorted(out.items()))


def _fields(table: dict, settings, cell, fixable: list[str]) -> tuple[tuple[str, Range], ...]:
    """RunConfig fields as ranges, each value checked by building the first cell's run with it.
    An explicit setting's own value of a field searched by choices joins the choices (as the
    explicit settings' codecs join the codec lists), so the sampler can be told its params."""
    out = {}
    for field, raw in table.items():
        path = f"sweep.search.fields.{field}"
        if field not in fixable:
            raise UsageError(unknown_name_message(path, field, fixable))
        rng = parse_range(path, raw)
        if rng.choices is not None:
            values = [None if v == OFF else v for v in rng.choices]
            values += [v for s in settings for k, v in s.fields if k == field and v not in values]
            rng = Range(choices=tuple(dict.fromkeys(values)))
        _check(path, rng, lambda value: cell.config(**{field: value}))
        out[field] = rng
    return tuple(sorted(out.items()))


def _check(path: str, rng: Range, build) -> None:
    """Build with each choice, or each bound, of `rng`; what `build` rejects is an error naming `path`."""
    for value in rng.choices or (rng.low, rng.high):
        try:
            build(value)
        except UsageError as exc:
            raise UsageError(f"{path}: {value!r} is not allowed ({exc})") from None


def parse_range(path: str, raw: Any) -> Range:
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a table {{low, high, log}} or {{choices}}, got {raw!r}")
    for key in raw:
        if key not in ("low", "high", "log", "choices"):
            raise UsageError(unknown_name_message(f"{path}.{key}", key, ["low", "high", "log", "choices"]))
    if "choices" in raw:
        if set(raw) != {"choices"} or not isinstance(raw["choices"], list) or not raw["choices"]:
            raise UsageError(f"{path}: choices must be a non-empty list, alone, got {raw!r}")
        if len(set(map(repr, raw["choices"]))) != len(raw["choices"]):
            raise UsageError(f"{path}: choices list a value twice, got {raw['choices']!r}")
        return Range(choices=tuple(raw["choices"]))
    low, high, log = raw.get("low"), raw.get("high"), raw.get("log", False)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise UsageError(f"{path}: low and high must both be numbers, got low={low!r} high={high!r}")
    if not low <= high:
        raise UsageError(f"{path}: low must be <= high, got low={low!r} high={high!r}")
    if not isinstance(log, bool) or (log and low <= 0):
        raise UsageError(f"{path}: log must be true or false, and a log range needs low > 0, got log={log!r} low={low!r}")
    return Range(low=low, high=high, log=log)


def known(path: str, table: dict, keys: list[str], shown: str | None = None) -> None:
    for key in table:
        if key not in keys:
            raise UsageError(unknown_name_message(f"{shown or path}.{key}", key, keys))


def subtable(table: dict, path: str, key: str) -> dict:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{path}.{key}: expected a table, got {value!r}")
    return value


def listed(table: dict, path: str, key: str, kind: type) -> list:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise UsageError(f"{path}.{key}: expected a non-empty list of {kind.__name__}, got {value!r}")
    if len(set(value)) != len(value):
        raise UsageError(f"{path}.{key}: lists a value twice, got {value!r}")
    return value
