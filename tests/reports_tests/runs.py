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

from reports import frames, noise

_ids = itertools.count()


def run(policy="always", up="fp32", down="fp32", *, seed=0, acc=0.9, comm=100.0, total=None, flops=1e9,
        study="vgg11-c2-clients1", status="FINISHED", args=None, model="vgg11", clients=1, modes=(0, 0, 0),
        role="trial", tags=None, options=None) -> dict:
    params = {"model": model, "width": "1.0", "cut": "2", "dataset": "cifar10", "clients": str(clients),
              "epochs": str(len(modes)), "train_subset": "None", "seed": str(seed), "policy": policy,
              "quant_up": up, "quant_down": down}
    params |= {f"policy.{k}": str(v) for k, v in (args or {}).items()} | (options or {})
    metrics = {"final/test_acc": acc, "final/comm_bytes": comm, "final/total_bytes": total or comm * 1.01,
               "final/client_flops": flops, "final/full_epochs": float(modes.count(0)),
               "final/forward_epochs": float(modes.count(1)), "final/cached_epochs": float(modes.count(2))}
    all_tags = {"splitbench.role": role, "study": study, "sweep": "s", "trial": str(next(_ids)),
                "git_commit": "abc123", "versions": "splitbench 0.1.0", "device": "cpu", "seed": str(seed),
                "data_source": "/data/cifar"} | (tags or {})
    history = {"mode": [(e, float(m)) for e, m in enumerate(modes)],
               "test/acc": [(e, acc * (e + 1) / len(modes)) for e in range(len(modes))]}
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
    children = [run(policy, up, down, seed=s, acc=a, modes=m, role="seed",
                    tags={"trial": top["tags"]["trial"], "mlflow.parentRunId": top["run_id"]}, **fields)
                for s, a, m in zip(seeds, accs, seed_modes)]
    for name in list(top["metrics"]):
        values = [c["metrics"][name] for c in children]
        top["metrics"][name], top["metrics"][f"{name}_std"] = np.mean(values), np.std(values, ddof=1)
    epochs = [[v for _, v in c["history"]["test/acc"]] for c in children]
    top["history"] = {"test/acc": list(enumerate(np.mean(epochs, axis=0)))}
    return [top, *children]


def study(name="vgg11-c2-clients1", margin_pp=None) -> dict:
    """A cell's parent run, as the sweep writes it: tag margin_pp when the spec gave one."""
    r = run(study=name, role="study", tags={} if margin_pp is None else {"margin_pp": str(margin_pp)})
    r["metrics"], r["history"] = {}, {}
    return r


def settings(runs: list[dict], margin_pp: float = noise.MARGIN_PP):
    """frames.settings of `runs`, each setting compared seed by seed with its cell's baseline."""
    trials = frames.trials(runs)
    return frames.settings(trials, frames.seed_values(runs, trials), margin_pp)
