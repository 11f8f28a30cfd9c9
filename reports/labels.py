"""How settings are named for people: the codec pair, the policy with its arguments, and
continuous argument values rounded to what matters (threshold=0.04, not 0.040013105825410386).
Every label the report shows is made here."""

from __future__ import annotations

import dataclasses

import pandas as pd

from bench.config import BASELINE
from reports.codecs import component

SIGNIFICANT = 2  # digits of a continuous policy or codec argument
PAPER_GATE = "loss_threshold"  # the family of PAPER.md's gate, every option as the paper has it


def codec_label(up: str, down: str) -> str:
    """The codec pair as shown: "quant_up/quant_down", e.g. "fp8_e4m3/fp8_e5m2"."""
    return f"{up}/{down}"


def baseline_label() -> str:
    """The baseline as the report names it: "always, fp32/fp32"."""
    return f"{BASELINE['policy']}, {codec_label(BASELINE['quant_up'], BASELINE['quant_down'])}"


def value(text: str) -> str:
    """An argument value as logged (a string), rounded for people: a non-integer number to
    SIGNIFICANT significant digits ("0.040013" -> "0.04"); integers and words unchanged."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return str(text)
    if number.is_integer() and not any(c in str(text) for c in ".eE"):
        return str(text)
    return f"{float(f'{number:.{SIGNIFICANT}g}'):g}"  # 150.5 -> "150", not "1.5e+02"


def setting_labels(policies: pd.Series, parsed: pd.Series) -> list[str]:
    """"policy(k=v, ...)" from each run's policy arguments (dicts), naming only the arguments that vary
    among the policy's runs (or that only some of them have), e.g. loss_threshold(threshold=0.3)
    when every run used reference=last_full; all of them when the policy ran with one set of arguments. Values are
    rounded by `value`; the full arguments stay in the policy_args column."""
    varying = {}
    for policy, args in zip(policies, parsed):
        seen = varying.setdefault(policy, {})
        for k, v in args.items():
            seen.setdefault(k, set()).add(value(v))
    for policy, args in zip(policies, parsed):  # an argument some runs lack (an engine option) varies too
        for k, values in varying[policy].items():
            if k not in args:
                values.add(None)
    labels = []
    for policy, args in zip(policies, parsed):
        shown = {k: value(v) for k, v in args.items() if len(varying[policy][k]) > 1} or {
            k: value(v) for k, v in args.items()}
        labels.append(policy + (f"({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else ""))
    return labels


def family(policy: str, args: dict, options: list[str]) -> str:
    """A setting's gate family: its policy, then each mechanism it switches on beyond the paper's
    form of that policy, e.g. "loss_threshold +signal=val", "periodic +cache_mixup". `args`: the
    policy's arguments as logged (strings); `options`: the engine options switched on.

    A policy's mechanisms are the fields it declares in `mechanisms`, each off at its default: one
    that differs shows as `+name=value` (a choice among words) or `+name`. A policy the report cannot
    find (a plugin it was not given) is a UsageError naming it."""
    cls = component("policy", policy, "gate family")
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    extras = []
    for name in getattr(cls, "mechanisms", ()):
        default = defaults[name]
        logged = str(args.get(name, default))
        if logged != str(default):
            extras.append(f"{name}={logged}" if isinstance(default, str) else name)
    if "signal=val" in extras:
        options = [o for o in options if o != "val_fraction"]  # the slice is part of that signal
    return " ".join([policy, *(f"+{e}" for e in extras + list(options))])
