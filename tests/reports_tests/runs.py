"""Runs as bench.tracking.load_runs returns them, written by hand: frames and tables without MLflow.

`run` is one run of one seed (a trial from before seeds existed, or a seed run; `options`: further
params, such as engine options); `trial` is a trial of several seeds in the sweep's layout: the trial
run (means, `_std`, param `seeds`, and `seeds_min` / `seeds_max` for adaptive seeds) and its seed
runs (tags splitbench.role = seed, seed = k, mlflow.parentRunId = the trial's run id); `study` is a
cell's parent run (tag margin_pp where the spec gave one). `settings` is frames.settings of runs.
"""

from __future__ import annotations

import itertools

import numpy as np

from bench import names
from reports import frames, noise

_ids = itertools.count()


def run(policy="always", up="fp32", down="fp32", *, seed=0, acc=0.9, comm=100.0, total=None, flops=1e9,
        study="vgg11-c2-clients1", status="FINISHED", args=None, model="vgg11", clients=1, modes=(0, 0, 0),
        role=names.TRIAL_ROLE, tags=None, options=None) -> dict:
    params = {"model": model, "width": "1.0", "cut": "2", "dataset": "cifar10", "clients": str(clients),
              "epochs": str(len(modes)), "train_subset": "None", "seed": str(seed), "policy": policy,
              "quant_up": up, "quant_down": down}
    params |= {f"policy.{k}": str(v) for k, v in (args or {}).items()} | (options or {})
    metrics = {names.FINAL_TEST_ACC: acc, names.FINAL_COMM_BYTES: comm, names.FINAL_TOTAL_BYTES: total or comm * 1.01,
               names.FINAL_CLIENT_FLOPS: flops, names.FINAL_FULL_EPOCHS: float(modes.count(0)),
               names.FINAL_FORWARD_EPOCHS: float(modes.count(1)), names.FINAL_CACHED_EPOCHS: float(modes.count(2))}
    all_tags = {names.ROLE: role, names.STUDY: study, names.SWEEP: "s", names.TRIAL: str(next(_ids)),
                names.GIT_COMMIT: "abc123", names.VERSIONS: "splitbench 0.1.0", names.DEVICE: "cpu",
                names.SEED: str(seed), names.DATA_SOURCE: "/data/cifar"} | (tags or {})
    history = {names.MODE: [(e, float(m)) for e, m in enumerate(modes)],
               names.TEST_ACC: [(e, acc * (e + 1) / len(modes)) for e in range(len(modes))]}
    return {"run_id": f"r{next(_ids)}", "name": f"{policy}-{up}-{down}-s{seed}", "status": status, "tags": all_tags,
            "params": params, "metrics": metrics if status == "FINISHED" else {},
            "history": history if status == "FINISHED" else {}}


def trial(policy="always", up="fp32", down="fp32", *, accs=(0.9, 0.91), seeds=None, modes=(0, 0, 0),
          seed_modes=None, tags=None, plan=None, **fields) -> list[dict]:
    """[trial run, seed runs...] of one setting trained once per seed: seed k reaches accs[k]
    (seeds: 0, 1, ... unless given; seed_modes: each seed's modes, else `modes` for all). One seed
    gives the trial run alone, holding `mode`, as the sweep writes it. plan: (seeds_min, seeds_max)
    of adaptive seeds, logged as params."""
    seeds = list(seeds if seeds is not None else range(len(accs)))
    seed_modes = seed_modes or [modes] * len(seeds)
    top = run(policy, up, down, seed=seeds[0], acc=accs[0], modes=seed_modes[0], tags=tags, **fields)
    top["params"]["seeds"] = ",".join(map(str, seeds))
    if plan:
        top["params"] |= {"seeds_min": str(plan[0]), "seeds_max": str(plan[1])}
    if len(seeds) == 1:
        return [top]
    children = [run(policy, up, down, seed=s, acc=a, modes=m, role=names.SEED_ROLE,
                    tags={names.TRIAL: top["tags"][names.TRIAL], names.PARENT: top["run_id"]}, **fields)
                for s, a, m in zip(seeds, accs, seed_modes)]
    for name in list(top["metrics"]):
        values = [c["metrics"][name] for c in children]
        top["metrics"][name], top["metrics"][names.std(name)] = np.mean(values), np.std(values, ddof=1)
    epochs = [[v for _, v in c["history"][names.TEST_ACC]] for c in children]
    top["history"] = {names.TEST_ACC: list(enumerate(np.mean(epochs, axis=0)))}
    return [top, *children]


def study(name="vgg11-c2-clients1", margin_pp=None) -> dict:
    """A cell's parent run, as the sweep writes it: tag margin_pp when the spec gave one."""
    r = run(study=name, role=names.STUDY_ROLE, tags={} if margin_pp is None else {names.MARGIN_PP: str(margin_pp)})
    r["metrics"], r["history"] = {}, {}
    return r


def settings(runs: list[dict], margin_pp: float = noise.MARGIN_PP):
    """frames.settings of `runs`, each setting compared seed by seed with its cell's baseline."""
    trials = frames.trials(runs)
    return frames.settings(trials, frames.seed_values(runs, trials), margin_pp)
