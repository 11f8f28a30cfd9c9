"""One setting trained over its seeds and recorded: the one path from a RunConfig to MLflow.

`bench run` and every sweep trial call train_setting, so the two can never record differently:

    one seed   one run: params (RunConfig.to_params() and `seeds`), the per-epoch history, the
               final metrics, provenance tags, config.json, the data set inputs (training and
               test images: name, digest, sizes, partition), partition.json (each client's class
               counts), the machine's system metrics (unless off), and the weights on request.
    n seeds    the setting's run: the same params with `seeds` = "0,1,2" (in order); every final
               metric `final/<name>` is the mean over the seeds and `final/<name>_std` their sample
               standard deviation (ddof=1); per epoch (step = epoch) the mean over the seeds of every
               metric except the modes (`mode`, `mode/client_K`: a mean of modes is no mode).
               Under it one nested run per seed (tags `splitbench.role` = seed, `seed` = k) holds
               that seed exactly as a single-seed run would (its own params, history, finals, weights).

Seeds that already finished in an earlier, interrupted attempt are adopted (moved under the new
setting run) instead of trained again.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Callable, Mapping

from bench import names, tracking
from bench.config import RunConfig
from bench.errors import UsageError


@dataclass(frozen=True)
class Destination:
    """Where a setting's runs go: the store, the experiment, the run's name, its parent and tags."""

    uri: str
    experiment: str
    name: str
    parent_run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)  # on the setting's run and on every seed run
    save_model: bool = False
    system_metrics_s: float | None = tracking.SYSTEM_METRICS_INTERVAL_S  # sampling interval; None: off


@dataclass(frozen=True)
class Outcome:
    run_id: str
    experiment_id: str
    final: dict[str, float]  # as logged on the setting's run: the means (and `_std` with >= 2 seeds)
    seeds: tuple[int, ...] = ()  # the seeds trained or adopted (adaptive seeds may stop early)


def check_seeds(name: str, seeds) -> tuple[int, ...]:
    """The seeds as a tuple, or a UsageError naming `name` when the list is empty, negative or repeated."""
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise UsageError(f"{name}: expected a non-empty list of seeds, got {seeds!r}")
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise UsageError(f"{name}: every seed must be an integer >= 0, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"{name}: lists a seed twice, got {list(seeds)}")
    return tuple(seeds)


def params(cfg: RunConfig, seeds: tuple[int, ...]) -> dict:
    """The setting's params: RunConfig.to_params() of its first seed plus `seeds`."""
    return dataclasses.replace(cfg, seed=seeds[0]).to_params() | {names.SEEDS: ",".join(map(str, seeds))}


def train_setting(cfg: RunConfig, seeds: tuple[int, ...], dest: Destination, *,
                  load: Callable[[RunConfig], object] | None = None,
                  watch: Callable[[int], object] | None = None,
                  adopt: Mapping[int, str] | None = None,
                  started: Callable[[str], None] | None = None, progress: bool = False,
                  transport=None, after_seed: Callable[[int, dict[str, float]], bool] | None = None,
                  plan: Mapping[str, int] | None = None) -> Outcome:
    """Train `cfg` once per seed and record the runs as the module docstring says.

    load: the data set of a seed's config (default RunConfig.load_data); watch: an extra Sink per
    seed (progress, console); adopt: seed -> id of a finished seed run to move under this setting
    instead of training that seed; started: called with the setting run's id once it exists;
    progress: a progress bar per epoch; transport: an open session with a server that was given
    this setting's config (`bench run --connect`; one seed only), else each seed opens its own.
    after_seed: called with each seed and its final metrics once it is done (trained or adopted);
    True stops the setting there (adaptive seeds), and the param `seeds` then lists the seeds it
    trained, logged at the end beside `plan` (seeds_min, seeds_max).
    A RunFailed of any seed fails the seed's run and the setting's run and propagates.
    """
    from bench.engine import resolve_device

    if transport is not None and len(seeds) > 1:
        raise UsageError("seeds: a server session serves one run, so it takes a single seed")
    load = load or RunConfig.load_data
    device = str(resolve_device(cfg.device))
    configs = {s: dataclasses.replace(cfg, seed=s) for s in seeds}
    first = load(configs[seeds[0]])
    tags = dict(dest.tags) | tracking.provenance(device, seeds[0]) | {names.DATA_SOURCE: first.source}
    with tracking.MlflowRun(dest.uri, dest.experiment, dest.name, parent_run_id=dest.parent_run_id,
                            tags=tags) as setting:
        logged = params(cfg, seeds)
        if plan:  # adaptive: the seeds it trains are known at the end
            logged = {k: v for k, v in logged.items() if k != names.SEEDS} | dict(plan)
        setting.log_config(logged, dataclasses.asdict(configs[seeds[0]]))
        log_data(setting, configs[seeds[0]], first)
        if started:
            started(setting.run_id)
        with setting.system_metrics(dest.system_metrics_s):
            done, final = _train_seeds(setting, dest, configs, first, device, load=load, watch=watch, adopt=adopt,
                                       progress=progress, transport=transport, after_seed=after_seed)
        if plan:
            setting.log_config({names.SEEDS: ",".join(map(str, done))}, dataclasses.asdict(configs[seeds[0]]))
    return Outcome(setting.run_id, setting.experiment_id, final, tuple(done))


def _train_seeds(setting, dest: Destination, configs: dict[int, RunConfig], first, device: str, *, load, watch,
                 adopt, progress, transport, after_seed) -> tuple[list[int], dict[str, float]]:
    """Each seed of train_setting trained (or adopted) under `setting`, until after_seed says stop: the
    seeds done and the setting's final metrics."""
    from bench.console import Tee
    from bench.engine import train

    seeds = tuple(configs)
    results = {}
    for seed in seeds:
        if adopt and seed in adopt:
            results[seed] = tracking.adopt_run(dest.uri, adopt[seed], setting.run_id, dest.tags)
            if after_seed and after_seed(seed, results[seed][1]):
                break
            continue
        ds = first if seed == seeds[0] else load(configs[seed])
        sinks = [watch(seed)] if watch else []
        if len(seeds) == 1:
            result = train(configs[seed], Tee([setting, *sinks]), dataset=ds, progress=progress, transport=transport)
            _save(setting, result, dest.save_model)
            if after_seed:
                after_seed(seed, result.final)  # noted; one seed has nothing left to stop
            return [seed], result.final
        seed_tags = (dict(dest.tags) | tracking.provenance(device, seed)
                     | {names.DATA_SOURCE: ds.source, names.ROLE: names.SEED_ROLE})
        with tracking.MlflowRun(dest.uri, dest.experiment, f"{dest.name}-s{seed}",
                                parent_run_id=setting.run_id, tags=seed_tags) as run:
            run.log_config(params(configs[seed], (seed,)), dataclasses.asdict(configs[seed]))
            log_data(run, configs[seed], ds)
            result = train(configs[seed], Tee([run, *sinks]), dataset=ds, progress=progress)
            _save(run, result, dest.save_model)
        results[seed] = (result.epochs, result.final)
        if after_seed and after_seed(seed, result.final):
            break
    done = [s for s in seeds if s in results]
    final = summarize([results[s][1] for s in done])
    setting.log_history(mean_epochs([results[s][0] for s in done]))
    setting.log_final(final)
    return done, final


def log_data(run, cfg: RunConfig, ds) -> None:
    """What the run trains and tests on: the training and test images as MLflow inputs (name, digest
    of the exact images, sizes, partition) and partition.json (each client's class counts)."""
    from bench import data
    from bench.partition import class_counts

    scheme = cfg.partition_scheme()
    shards = cfg.shards(ds.train_y)
    counts = class_counts(ds.train_y, shards, ds.num_classes)
    sizes = [len(s) for s in shards]
    run.log_partition({"partition": scheme.kind, "label": scheme.label(), "alpha": scheme.alpha,
                       "classes_per_client": scheme.classes_per_client, "min_samples": scheme.min_samples,
                       "seed": cfg.seed, "clients": cfg.clients, "shard_sizes": sizes, "class_counts": counts})
    shape = list(ds.train_x.shape[1:])
    run.log_inputs([
        tracking.DataInput(f"{ds.name}-train", data.digest(ds.train_x, ds.train_y), ds.source, "training",
                           {"samples": len(ds.train_y), "trained": sum(sizes), "subset": cfg.train_subset,
                            "image_shape": shape, "classes": ds.num_classes, "partition": scheme.label(),
                            "clients": cfg.clients, "shard_sizes": sizes},
                           {"partition": scheme.label()}),
        tracking.DataInput(f"{ds.name}-test", data.digest(ds.test_x, ds.test_y), ds.source, "test",
                           {"samples": len(ds.test_y), "subset": cfg.test_subset, "image_shape": shape,
                            "classes": ds.num_classes}),
    ])


def _save(run, result, save_model: bool) -> None:
    if save_model:
        run.log_weights({"client": result.client, "server": result.server})


def summarize(finals: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every final metric over the seeds, and `<name>_std`, the sample standard deviation."""
    out = {}
    for name in finals[0]:
        values = [f[name] for f in finals]
        out[name] = statistics.fmean(values)
        out[names.std(name)] = statistics.stdev(values)
    return out


def mean_epochs(histories: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per epoch, the mean over the seeds of every metric but the modes."""
    out = []
    for records in zip(*histories):
        kept = [k for k in records[0] if not names.is_mode(k)]  # mode/client_K too
        out.append({k: statistics.fmean(r[k] for r in records) for k in kept})
    return out
