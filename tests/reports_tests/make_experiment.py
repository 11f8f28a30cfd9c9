"""A real, tiny sweep in MLflow, shaped exactly as the sweep runner writes it (the reports' input).

Per cell (study): one parent run named after the study, tagged splitbench.role=study, with the
cell's fixed fields as params; per trial one nested child run tagged splitbench.role=trial, study,
sweep, trial, config_key and the provenance tags, with RunConfig.to_params() and `seeds` ("0,1")
as params, its data set inputs and partition.json. A trial of one seed holds the engine's metrics; a trial of several holds their means
over seeds (per epoch, but no `mode`; final/<name> with final/<name>_std, ddof=1), and one run
per seed nested under it (splitbench.role=seed, tag seed) holds that seed's own metrics. The
always/fp32 baseline is the first trial of every study, as the sweep enqueues it; the last trial
repeats it and takes its result (tag duplicate_of=0). One trial diverges on purpose and ends FAILED.

    python -m tests.reports_tests.make_experiment --uri sqlite:///tmp/x/mlflow.db --experiment quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import replace

import numpy as np
import torch

from bench import data, names, record, tracking
from bench.config import RunConfig
from bench.engine import train
from bench.errors import RunFailed

CELL_FIELDS = ("model", "width", "cut", "dataset", "clients", "epochs", "train_subset")
# (policy, policy args, quant_up, quant_down, seeds); the first is the baseline.
TRIALS = (
    ("always", (), "fp32", "fp32", (0, 1)),
    ("periodic", (("period", 3),), "fp32", "fp32", (0,)),
    ("periodic", (("period", 3),), "fp8_e4m3", "fp8_e5m2", (0, 1)),
    ("loss_threshold", (("threshold", 0.3),), "fp16", "fp16", (0,)),
    ("always", (), "fp8_e4m3", "fp8_e5m2", (0,)),
    ("periodic", (("period", 5),), "fp8_e4m3", "fp8_e5m2", (0,)),
    ("loss_threshold", (("threshold", 0.05),), "fp8_e4m3", "fp8_e5m2", (0,)),
    ("periodic", (("period", 2),), "bf16", "bf16", (0,)),
)


def make(uri: str, experiment: str, *, clients=(1, 2), epochs: int = 3, train_subset: int = 400,
         test_subset: int = 200, trials=TRIALS) -> None:
    """Train and log every trial of every cell (clients x trials), then a repeat of the baseline;
    the last cell gets a FAILED trial."""
    # These nets are tiny: one thread is ~10x faster than two contending with other jobs on the machine.
    torch.set_num_threads(1)
    base = dict(model="smallcnn", width=0.25, cut=2, dataset="synthetic", epochs=epochs, train_subset=train_subset,
                test_subset=test_subset, batch_size=32, warmup_epochs=0, device="cpu")
    for n in clients:
        study = f"smallcnn-w0.25-c2-clients{n}"
        cell = RunConfig(**base, clients=n)
        fixed = {k: v for k, v in cell.to_params().items() if k in CELL_FIELDS}
        study_tags = {names.ROLE: names.STUDY_ROLE, names.STUDY: study, names.SWEEP: experiment}
        with tracking.MlflowRun(uri, experiment, study, tags=study_tags) as parent:
            parent.log_config(fixed, fixed)
            specs = [(spec, {}) for spec in trials]
            if n == clients[-1]:
                specs.append((TRIALS[0][:4] + ((0,),), {"lr": 1e4}))  # diverges: NaN loss in the first epoch
            results = []
            for number, ((policy, args, up, down, seeds), extra) in enumerate(specs):
                overrides = dict(policy=policy, policy_args=args, quant_up=up, quant_down=down, seed=seeds[0])
                cfg = RunConfig(**(base | overrides | extra), clients=n)
                results.append(_trial(uri, experiment, study, parent.run_id, number, cfg, seeds))
            if trials:
                cfg = RunConfig(**(base | dict(seed=trials[0][4][0])), clients=n)
                _trial(uri, experiment, study, parent.run_id, len(specs), cfg, trials[0][4], repeats=(0, results[0]))


def _trial(uri, experiment, study, parent_id, number, cfg: RunConfig, seeds, repeats=None) -> list | None:
    """Log trial `number` (training it once per seed, or, with repeats=(trial, its results), taking
    that earlier trial's results); its per-seed results, or None when it failed."""
    ds = data.load(cfg.dataset, None, train_subset=cfg.train_subset, test_subset=cfg.test_subset, seed=cfg.seed)
    params = cfg.to_params()
    key = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]
    tags = tracking.provenance("cpu", cfg.seed) | {
        names.DATA_SOURCE: ds.source, names.ROLE: names.TRIAL_ROLE, names.STUDY: study, names.SWEEP: experiment,
        names.TRIAL: str(number), names.CONFIG_KEY: key,
    } | ({names.DUPLICATE_OF: str(repeats[0])} if repeats else {})
    name = f"{study}-t{number}-{cfg.policy}-{cfg.quant_up}-{cfg.quant_down}"
    try:
        with tracking.MlflowRun(uri, experiment, name, parent_run_id=parent_id, tags=tags) as run:
            run.log_config(params | {"seeds": ",".join(map(str, seeds))}, params)
            record.log_data(run, cfg, ds)
            if repeats:
                results = repeats[1]
            elif len(seeds) == 1:
                return [train(cfg, run, dataset=ds, progress=False)]
            else:
                results = [_seed(uri, experiment, tags, run.run_id, replace(cfg, seed=seed), ds) for seed in seeds]
            _log_means(run, results)
            return results
    except RunFailed:
        return None  # recorded as FAILED with its reason, as the sweep does


def _seed(uri, experiment, trial_tags, trial_id, cfg: RunConfig, ds):
    tags = trial_tags | tracking.provenance("cpu", cfg.seed) | {names.ROLE: names.SEED_ROLE}
    with tracking.MlflowRun(uri, experiment, f"seed {cfg.seed}", parent_run_id=trial_id, tags=tags) as run:
        run.log_config(cfg.to_params(), cfg.to_params())
        return train(cfg, run, dataset=ds, progress=False)


def _log_means(run: tracking.MlflowRun, results) -> None:
    """The trial's metrics from its seeds' results: per-epoch means (`mode` only with one seed), final
    means and, with several seeds, their stds."""
    for epoch, records in enumerate(zip(*(r.epochs for r in results))):
        run.log_epoch(epoch, {k: np.mean([r[k] for r in records]) for k in records[0]
                              if k != "mode" or len(results) == 1})
    finals = {k: [r.final[k] for r in results] for k in results[0].final}
    run.log_final({k: np.mean(v) for k, v in finals.items()} |
                  ({names.std(k): np.std(v, ddof=1) for k, v in finals.items()} if len(results) > 1 else {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--experiment", default="quick")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=400)
    args = parser.parse_args()
    make(args.uri, args.experiment, epochs=args.epochs, train_subset=args.train_subset)


if __name__ == "__main__":
    main()
