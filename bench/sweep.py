"""Sweeps: grid cells -> one Optuna study each -> trials, each trial trained over the spec's seeds
and recorded by bench.record (a trial run of means, a nested run per seed).

    outcome = run(spec, Target(storage="sqlite:///optuna.db", tracking_uri="sqlite:///mlflow.db"), workers=2)

The command first checks everything (the spec, the data, the tracking server, the storage), then
prepares every cell once: its study with the baseline enqueued, and its MLflow parent run. Then
`workers` processes (spawned, one torch thread each) work through the cells against the shared
storage: a worker takes a waiting trial or asks the sampler for a new one while the cell has room,
moves on when the cell is full, and at the end waits for trials still running elsewhere (failing
those whose worker stopped beating; their retries run here). Other machines join by running the
same command with the same storage and tracking server. What counts as done is tuning.py's rule,
so a second run only adds what is missing.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queues
import signal
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Callable

import torch

from bench import data, devices, record, tracking, tuning
from bench.errors import RunFailed, StoreFault, UsageError
from bench.spec import Cell, SweepSpec

Report = Callable[[dict], None]
WAIT_POLL_S = 2  # how often a worker with nothing left to claim looks at the trials running elsewhere


@dataclass(frozen=True)
class Target:
    """Where a sweep reads and writes: Optuna storage, MLflow tracking URI, data folder."""

    storage: str = tuning.DEFAULT_STORAGE
    tracking_uri: str = tracking.DEFAULT_URI
    data_dir: str | None = None
    heartbeat: int | None = 30  # seconds; a trial is failed after 3 missed beats
    plugins: tuple[str, ...] = ()
    system_metrics_s: float | None = tracking.SYSTEM_METRICS_INTERVAL_S  # each trial's sampling; None: off


@dataclass(frozen=True)
class Outcome:
    code: int  # the command's exit code: 0 done, 130 interrupted, 1 a worker crashed
    trials: int  # trials this command ran to an end (completed or diverged)
    seconds: float
    summaries: tuple[tuning.Summary, ...]


def run(spec: SweepSpec, target: Target, workers: int = 1, console=None) -> Outcome:
    """Check, prepare, run `workers` workers to the end of the sweep, summarize."""
    from bench.console import SweepConsole

    if workers < 1:
        raise UsageError(f"workers: must be >= 1, got {workers}")
    started = time.perf_counter()
    parents, pending = prepare(spec, target)
    console = console or SweepConsole(spec, target, workers)
    code = 0
    try:
        if workers == 1 or not pending:  # nothing left: no processes to start
            work(spec, target, parents, 0, console.handle)
        else:
            code = _run_processes(spec, target, parents, workers, console)
    except KeyboardInterrupt:
        code = 130
    summaries = finish(spec, target, parents, interrupted=code == 130)
    outcome = Outcome(code, console.ended, time.perf_counter() - started, summaries)
    console.close(outcome)
    return outcome


def prepare(spec: SweepSpec, target: Target) -> tuple[dict[str, str], int]:
    """Check what can be checked before writing anything, then create each cell's study and parent run.

    Returns the parent run id of every study and the number of cells not yet done.
    """
    from bench.engine import resolve_device

    for cfg in {_data_key(cfg): cfg for cfg in (cell.config(target.data_dir) for cell in spec.cells)}.values():
        resolve_device(cfg.device)
        cfg.load_data()  # also checks what depends on the data set's size
    tracking.check_reachable(target.tracking_uri)
    storage = tuning.open_storage(target.storage, target.heartbeat)
    parents, pending = {}, 0
    for cell in spec.cells:
        pending += tuning.next_step(tuning.open_study(storage, cell, spec), spec) is not tuning.Next.DONE
        tags = {"n_trials": str(spec.trials), "sampler": spec.sampler, "sampler_seed": str(spec.seed)}
        parents[cell.study] = tracking.study_run(target.tracking_uri, spec.name, cell.study,
                                                 cell.params() | {"seeds": ",".join(map(str, spec.seeds))}, tags, spec.text)
    return parents, pending


def finish(spec: SweepSpec, target: Target, parents: dict[str, str], interrupted: bool) -> tuple[tuning.Summary, ...]:
    """Each cell's summary; parent runs end FINISHED when their study is, KILLED when interrupted."""
    storage = tuning.open_storage(target.storage, None)
    summaries = tuple(tuning.summarize(storage, cell) for cell in spec.cells)
    for s in summaries:
        if s.done + s.failed >= spec.trials:
            tracking.end_study_run(target.tracking_uri, parents[s.study], "FINISHED")
        elif interrupted:
            tracking.end_study_run(target.tracking_uri, parents[s.study], "KILLED")
    return summaries


def work(spec: SweepSpec, target: Target, parents: dict[str, str], index: int, report: Report) -> None:
    """One worker: run trials until every cell is done (or, without heartbeats, claimed)."""
    devices.use_worker_device(index)  # N workers share a GPU, or go round-robin over the visible ones
    storage = tuning.open_storage(target.storage, target.heartbeat)
    datasets: dict[tuple, data.Dataset] = {}
    pending = list(spec.cells)
    while pending:
        for cell in list(pending):
            study = tuning.open_study(storage, cell, spec)
            # Seeded per cell, worker and study size, so that workers (and machines joining
            # later) do not draw the same random start-up trials.
            seed = spec.seed + zlib.crc32(cell.study.encode()) + 7919 * index + 104729 * len(study.get_trials(deepcopy=False))
            study.sampler = tuning.make_sampler(spec, seed=seed % 2**32)
            step = tuning.next_step(study, spec)
            while step is tuning.Next.RUN:
                objective = Objective(spec, cell, target, parents[cell.study], datasets, report, index)
                tuning.run_one(study, objective)
                step = tuning.next_step(study, spec)
            if step is tuning.Next.DONE:
                pending.remove(cell)
        if pending:
            if not tuning.has_heartbeat(storage):
                return  # a dead worker's trial would never be released: leave the rest to others
            report({"worker": index, "kind": "wait", "study": pending[0].study})
            time.sleep(min(target.heartbeat, WAIT_POLL_S))


@dataclass
class Objective:
    """One trial: the cell's config with the trial's choice, trained over the spec's seeds and
    recorded (bench.record) as a child run of the study's run; a setting the study already
    finished takes that result instead."""

    spec: SweepSpec
    cell: Cell
    target: Target
    parent_run_id: str
    datasets: dict
    report: Report
    worker: int

    def __call__(self, trial) -> tuple[float, float]:
        tuning.check_room(trial, self.spec.trials)
        cfg = self.cell.config(self.target.data_dir, **tuning.choice(trial, self.spec))
        params = record.params(cfg, self.spec.seeds)
        key = tuning.config_key(params)
        trial.set_user_attr("config_key", key)
        trial.set_user_attr("duplicate_of", None)  # a retry inherits its attempt's attrs
        uri, sweep, study = self.target.tracking_uri, self.spec.name, self.cell.study
        dest = record.Destination(uri, sweep, f"{study.rpartition('/')[2]}-t{trial.number}", self.parent_run_id,
                                  tracking.trial_tags(sweep, study, trial.number, key), self.spec.save_model,
                                  self.target.system_metrics_s)
        index = trial.user_attrs.get("setting")
        own = self.spec.settings[index].fields if index is not None else ()  # an explicit setting's fields
        args = "".join(f" {k}={v:.3g}" if isinstance(v, float) else f" {k}={v}" for k, v in [*cfg.policy_args, *own])
        event = {"worker": self.worker, "study": study, "trial": trial.number, "epochs": cfg.epochs,
                 "seeds": len(self.spec.seeds), "choice": f"{cfg.policy}{args} {cfg.quant_up}/{cfg.quant_down}"}
        earlier = tuning.same_setting(trial, key)
        if earlier is not None:
            return self._duplicate(trial, earlier, dest, params, event)
        attempts = tuning.retried(trial)
        adopt = tracking.finished_seeds(uri, sweep, study, attempts, key)
        tracking.supersede(uri, sweep, study, attempts, trial.number, keep=frozenset(adopt.values()))
        self.report(event | {"kind": "start"})
        try:
            outcome = record.train_setting(
                cfg, self.spec.seeds, dest, load=self._dataset, adopt=adopt,
                watch=lambda seed: _Progress(self.report, event | {"seed": self.spec.seeds.index(seed)}),
                started=lambda run_id: trial.set_user_attr("mlflow_run_id", run_id))
        except RunFailed as exc:
            trial.set_user_attr("failure", f"{tuning.DIVERGED}: {exc}")
            self.report(event | {"kind": "end", "state": "FAIL", "reason": str(exc)})
            raise
        acc, nbytes = outcome.final["final/test_acc"], outcome.final["final/comm_bytes"]
        self.report(event | {"kind": "end", "state": "COMPLETE", "acc": acc, "bytes": nbytes,
                             "acc_std": outcome.final.get("final/test_acc_std")})
        return acc, nbytes

    def _duplicate(self, trial, earlier, dest, params, event) -> tuple[float, float]:
        """Take `earlier`'s result: its values in Optuna, its final metrics in a run tagged duplicate_of."""
        trial.set_user_attr("duplicate_of", earlier.number)
        run_id = tracking.record_duplicate(dest.uri, dest.experiment, dest.name, dest.parent_run_id,
                                           dict(dest.tags) | {"duplicate_of": str(earlier.number)}, params,
                                           earlier.user_attrs["mlflow_run_id"])
        trial.set_user_attr("mlflow_run_id", run_id)
        self.report(event | {"kind": "duplicate", "of": earlier.number})
        if earlier.values is None:  # it diverged
            trial.set_user_attr("failure", f"duplicate of trial {earlier.number}: {earlier.user_attrs['failure']}")
            raise RunFailed(f"duplicate of trial {earlier.number}, which failed")
        return tuple(earlier.values)

    def _dataset(self, cfg) -> data.Dataset:
        key = _data_key(cfg)
        if key not in self.datasets:
            self.datasets[key] = cfg.load_data()
        return self.datasets[key]


class _Progress:
    """A Sink that reports each epoch of a trial's seed to the console."""

    def __init__(self, report: Report, event: dict):
        self.report, self.event = report, event

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.report(self.event | {"kind": "epoch", "epoch": epoch, "acc": metrics["test/acc"]})

    def log_final(self, metrics: dict[str, float]) -> None:
        pass


def _data_key(cfg) -> tuple:
    return cfg.dataset, cfg.data_dir, cfg.train_subset, cfg.test_subset, cfg.seed


# ---- worker processes ---------------------------------------------------------------------------


def _run_processes(spec, target, parents, workers: int, console) -> int:
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's and SQLAlchemy's state
    events = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(spec, target, parents, i, events), name=f"sweep-worker-{i}")
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        _drain(events, console, procs, deadline=None)
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reaches the workers too; forward it to those it did not reach.
        _drain(events, console, procs, deadline=time.monotonic() + 10)
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGINT)
        _drain(events, console, procs, deadline=time.monotonic() + 60)
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    crashed = [p for p in procs if p.exitcode != 0]
    for p in crashed:
        print(f"error: {p.name} exited with code {p.exitcode}", file=sys.stderr)
    return 1 if crashed else 0


def _drain(events, console, procs, deadline: float | None) -> None:
    """Show the workers' events until they have all exited (or the deadline passes)."""
    while any(p.is_alive() for p in procs) and (deadline is None or time.monotonic() < deadline):
        try:
            console.handle(events.get(timeout=0.2))
        except queues.Empty:
            pass
    while True:  # what they sent just before exiting
        try:
            console.handle(events.get_nowait())
        except queues.Empty:
            return


def _worker_main(spec, target, parents, index: int, events) -> None:
    from bench.plugins import load_plugin

    # One thread per worker process: N workers on N cores beat N oversubscribed thread pools. A
    # sweep of one worker runs in the calling process, on all its threads.
    torch.set_num_threads(1)
    try:
        for plugin in target.plugins:
            load_plugin(plugin)
        work(spec, target, parents, index, events.put)
    except KeyboardInterrupt:
        sys.exit(130)
    except UsageError as exc:
        print(f"error: worker {index}: {exc}", file=sys.stderr)
        sys.exit(2)
    except StoreFault as exc:
        print(f"error: worker {index}: {exc}", file=sys.stderr)
        sys.exit(1)
