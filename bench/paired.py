"""Paired objectives across a study's trials: each finished seed's accuracy and bytes noted on its
trial, a setting's values against the baseline's seeds (reduction, paired difference) and its
verdict as the sampler's constraint, and the ablation planned from the best feasible setting.

User attrs of a trial: `seed_acc/<k>` and `seed_bytes/<k>` per finished seed, `choice` (what it
trained), `constraint` (its verdict, <= 0 feasible), and for an ablation step `ablation` (its label),
`ablation_choice` and `ablation_of`. The study's user attr `ablation` holds the plan.
"""

from __future__ import annotations

import json
import math
import time

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from bench import names
from bench.config import BASELINE

CONSTRAINT = "constraint"  # user attr: -(paired lower bound + margin); <= 0 is feasible (non-inferior)


def set_verdict(trial: Trial, constraint: float) -> None:
    """The trial's constraint for the sampler (<= 0: feasible), also noted as user attr CONSTRAINT."""
    trial.set_user_attr(CONSTRAINT, constraint)
    trial.set_constraint("verdict", constraint)


def paired_values(own: dict[int, float], baseline: dict[int, float], own_bytes: float, baseline_bytes: float,
                  margin_pp: float, n_looks: int) -> tuple[tuple[float, float], float]:
    """((reduction, paired difference in pp), constraint) of a setting's per-seed accuracies against
    the baseline's. The constraint is -(lower bound + margin): <= 0 exactly when the verdict is
    non-inferior; without a lower bound (fewer than 2 common seeds) it is the margin (infeasible)."""
    from reports import noise  # numpy and scipy only: the report's statistics, not the report

    p = noise.paired(own, baseline, margin_pp, n_looks)
    constraint = margin_pp if math.isnan(p.low) else -(p.low + margin_pp)
    delta = 0.0 if math.isnan(p.delta) else p.delta
    return (baseline_bytes / own_bytes if own_bytes > 0 else math.inf, delta), constraint


ABLATION = names.ABLATION  # study user attr: the plan ({of, steps, skipped}); trial user attr: its step's label
ABLATION_CHOICE = "ablation_choice"  # trial user attr: its step's choice, as JSON
CHOICE = "choice"  # trial user attr: what it trained (tuning.choice), as JSON


def best_feasible(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The finished search trial of largest reduction (then paired difference) whose verdict is
    non-inferior (CONSTRAINT <= 0), the baseline left out; None when there is none."""
    from bench import ablation

    baseline = ablation.normal(BASELINE)
    feasible = [t for t in trials if t.state == TrialState.COMPLETE and ABLATION not in t.user_attrs
                and t.user_attrs.get(CONSTRAINT, math.inf) <= 0 and CHOICE in t.user_attrs
                and ablation.normal(json.loads(t.user_attrs[CHOICE])) != baseline]
    return max(feasible, key=lambda t: tuple(t.values), default=None)


def plan_ablation(study: optuna.Study, spec, cell) -> bool:
    """Queue one trial per ablation step of the best feasible setting (bench/ablation.py) and note the
    plan on the study; False when there is nothing to ablate."""
    from bench import ablation
    from bench.spec import Setting

    best = best_feasible(study.get_trials(deepcopy=False))
    steps, skipped = ablation.steps(json.loads(best.user_attrs[CHOICE]), cell) if best else ([], [])
    for step in steps:
        study.enqueue_trial(spec.fixed_params(Setting.of(step.choice), cell),
                            user_attrs={ABLATION: step.label, ABLATION_CHOICE: json.dumps(step.choice),
                                        names.ABLATION_OF: best.number})
    study.set_user_attr(ABLATION, {"of": best and best.number, "steps": [s.label for s in steps], "skipped": skipped})
    return bool(steps)


SEED_ACC = "seed_acc/"  # user attr prefix: a trial's final test accuracy of each seed it finished
SEED_BYTES = "seed_bytes/"  # and its communication, bytes
PAIR_POLL_S = 5.0


def record_seed(trial: Trial, seed: int, acc: float, nbytes: float) -> None:
    """Note one finished seed's accuracy and bytes on the trial, where the paired comparisons of
    other trials read them."""
    trial.set_user_attr(f"{SEED_ACC}{seed}", acc)
    trial.set_user_attr(f"{SEED_BYTES}{seed}", nbytes)


def seed_accuracies(trial: FrozenTrial, prefix: str = SEED_ACC) -> dict[int, float]:
    return {int(k.removeprefix(prefix)): v for k, v in trial.user_attrs.items() if k.startswith(prefix)}


def paired_accuracies(trial: Trial, config_key: str, seeds: set[int], poll_s: float = PAIR_POLL_S,
                      prefix: str = SEED_ACC) -> dict[int, float]:
    """The per-seed accuracies (or, by `prefix`, bytes) of the study's trial of `config_key` (the
    baseline). While that trial runs and lacks some of `seeds`, wait for them: a pair needs both of
    its seeds. {} when no such trial exists."""
    while True:
        found = [t for t in trial.study.get_trials(deepcopy=False)
                 if t.user_attrs.get("config_key") == config_key and not t.user_attrs.get("duplicate_of")
                 and t.number != trial.number]
        accs: dict[int, float] = {}
        for t in found:
            accs |= seed_accuracies(t, prefix)
        if seeds <= set(accs) or not any(t.state == TrialState.RUNNING for t in found):
            return accs
        time.sleep(poll_s)
