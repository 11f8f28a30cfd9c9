"""Ablation: what each ingredient of a setting buys, found by taking one away at a time.

A setting is a choice (tuning.choice: policy and policy_args, quant_up / quant_down and their args,
and RunConfig fields of its own). Its ingredients are the parts that differ from their reference:

    the gate           policy other than always               -> always (the codecs kept)
    a gate argument    policy_args[f] other than the policy's  -> the policy's default
                       default (threshold, max_cached, ...)
    a codec            quant_up other than fp8_e4m3,           -> that FP8 format, its own arguments
                       quant_down other than fp8_e5m2             dropped, its stage arguments kept
                       (the paper's formats) and fp32
    a codec argument   one of its own arguments other than    -> the codec's default
                       its default (topk's k, inner, ...)
    a stage            error_feedback or entropy on           -> off
    an engine option   a RunConfig field of the setting's     -> the cell's value
                       own (cache_mixup, refresh_threshold, ...)

steps() derives every such step from the setting itself, never from a list by hand: a new policy
argument, codec or engine option is ablated as soon as a setting uses it. A step RunConfig rejects
(removing val_fraction under signal = val) is left out with its reason. An option inert under the
setting's policy (config.inert: the cache options under always) is no ingredient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bench import config
from bench.config import BASELINE
from bench.errors import UsageError

GATE_OFF = BASELINE["policy"]
REFERENCE_CODECS = {"quant_up": "fp8_e4m3", "quant_down": "fp8_e5m2"}  # PAPER.md's FP8 formats
NO_CODEC = BASELINE["quant_up"]  # the baseline's: sending float32 is no ingredient to take away
CODEC_KEYS = ("policy", "policy_args", "quant_up", "quant_up_args", "quant_down", "quant_down_args")


@dataclass(frozen=True)
class Step:
    """One ablation step: `label` says what was taken away (`cache_mixup: 0.2 -> 0.0`), `choice` is
    the setting without it."""

    label: str
    choice: dict[str, Any]


def steps(choice: dict[str, Any], cell) -> tuple[list[Step], list[str]]:
    """(the steps of `choice`, each valid on `cell`; the reasons of the steps left out)."""
    from policies import POLICIES
    from quantizers import QUANTIZERS
    from quantizers.wrappers import STAGE_NAMES, Stages

    choice = config.without_inert_choice(normal(choice))  # an inert option is nothing to take away
    candidates = []
    if choice["policy"] != GATE_OFF:
        candidates.append((f"policy: {choice['policy']} -> {GATE_OFF}", {"policy": GATE_OFF, "policy_args": ()}))
    defaults = POLICIES.get(choice["policy"])()
    for name, value in choice["policy_args"]:
        if value != getattr(defaults, name):
            candidates.append((f"{choice['policy']}.{name}: {value} -> {getattr(defaults, name)}",
                               {"policy_args": _without(choice["policy_args"], name)}))
    for direction, reference in REFERENCE_CODECS.items():
        codec, args = choice[direction], dict(choice[f"{direction}_args"])
        stages = tuple((k, v) for k, v in sorted(args.items()) if k in STAGE_NAMES)
        if codec not in (reference, NO_CODEC):
            candidates.append((f"{direction}: {codec} -> {reference}", {direction: reference, f"{direction}_args": stages}))
        for name, value in sorted(args.items()):  # its own arguments and stages, as RunConfig checked them
            default = getattr(Stages() if name in STAGE_NAMES else QUANTIZERS.get(codec)(), name)
            if value != default:
                candidates.append((f"{direction}.{name}: {value} -> {default}",
                                   {f"{direction}_args": _without(choice[f"{direction}_args"], name)}))
    base = cell.config()
    for name, value in sorted(fields(choice).items()):
        if value != getattr(base, name):
            candidates.append((f"{name}: {value} -> {getattr(base, name)}", {name: getattr(base, name)}))
    out, skipped, seen = [], [], set()
    for label, change in candidates:
        step = normal(choice | change)
        try:
            key = json.dumps(cell.config(**step).to_params(), sort_keys=True, default=str)
        except UsageError as exc:
            skipped.append(f"{label}: {exc}")
            continue
        if key not in seen:
            seen.add(key)
            out.append(Step(label, step))
    return out, skipped


def fields(choice: dict[str, Any]) -> dict[str, Any]:
    """The RunConfig fields a choice sets besides the policy and codecs."""
    return {k: v for k, v in choice.items() if k not in CODEC_KEYS}


def normal(choice: dict[str, Any]) -> dict[str, Any]:
    """A choice with every part present, arguments as sorted tuples of pairs (JSON lists turned back)."""
    out = {"policy_args": (), "quant_up_args": (), "quant_down_args": ()} | BASELINE | choice
    for key in ("policy_args", "quant_up_args", "quant_down_args"):
        out[key] = tuple(sorted(tuple(pair) for pair in out[key]))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def _without(args, name: str) -> tuple:
    return tuple(pair for pair in args if pair[0] != name)
