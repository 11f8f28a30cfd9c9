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
import json
import signal
import sys
import time
import zlib
from dataclasses import dataclass
from typing import Callable

import torch

from bench import config, data, devices, names, paired, record, tracking, tuning
from bench.errors import RunFailed, StoreFault, UsageError
from bench.spec import Cell, SweepSpec

Report = Callable[[dict], None]
WAIT_POLL_S = 2  # how often a worker with nothing left to claim looks at the trials running elsewhere
DECLARE_POLL_S, DECLARE_WAIT_S = 0.2, 30  # an earlier trial that has not yet said which setting it trains
MAX_MOVES = 5  # in-flight proposals in a row a worker moves on from; the next one it waits for


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


def run(spec: SweepSpec, target: Target, workers: int = 1, console=None, threads: int = 1) -> Outcome:
    """Check, prepare, run `workers` workers to the end of the sweep, summarize. Worker processes
    compute on `threads` torch threads each; one worker runs in this process, on its threads."""
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
            code = _run_processes(spec, target, parents, workers, console, threads)
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

    for cfg in {cfg.data_key(): cfg for cfg in (cell.config(target.data_dir) for cell in spec.cells)}.values():
        resolve_device(cfg.device)
        cfg.load_data()  # also checks what depends on the data set's size
    tracking.check_reachable(target.tracking_uri)
    storage = tuning.open_storage(target.storage, target.heartbeat)
    parents, pending = {}, 0
    for cell in spec.cells:
        pending += tuning.next_step(tuning.open_study(storage, cell, spec), spec, cell) is not tuning.Next.DONE
        tags = {"n_trials": str(spec.trials), "sampler": spec.sampler, "sampler_seed": str(spec.seed),
                "margin_pp": str(spec.margin_pp)}
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
    elsewhere = Elsewhere(spec, storage, pending)
    while pending:
        for cell in list(pending):
            study = tuning.open_study(storage, cell, spec)
            # Seeded per cell, worker and study size, so that workers (and machines joining
            # later) do not draw the same random start-up trials.
            seed = spec.seed + zlib.crc32(cell.study.encode()) + 7919 * index + 104729 * len(study.get_trials(deepcopy=False))
            study.sampler = tuning.make_sampler(spec, seed=seed % 2**32)
            step = tuning.next_step(study, spec, cell)
            while step is tuning.Next.RUN:
                objective = Objective(spec, cell, target, parents[cell.study], datasets, report, index, elsewhere)
                tuning.run_one(study, objective)
                step = tuning.next_step(study, spec, cell)
            if step is tuning.Next.DONE:
                pending.remove(cell)
        if pending:
            if not tuning.has_heartbeat(storage):
                return  # a dead worker's trial would never be released: leave the rest to others
            report({"worker": index, "kind": "wait", "study": pending[0].study})
            time.sleep(min(target.heartbeat, WAIT_POLL_S))


@dataclass
class Elsewhere:
    """Whether a worker has other work than waiting for a setting in flight: a waiting trial or room
    for another setting in the trial's cell, or another cell not done. After MAX_MOVES such moves in
    a row (the sampler keeps proposing what is taken) it waits instead."""

    spec: SweepSpec
    storage: object
    pending: list[Cell]  # the worker's cells not yet done
    moves: int = 0  # in-flight proposals moved on from since the worker last trained or took a result

    def __call__(self, cell: Cell, trial) -> bool:
        if self.moves >= MAX_MOVES:
            return False
        others = (c for c in self.pending if c is not cell)
        if tuning.room_for_another(trial, self.spec) or any(
                tuning.next_step(tuning.open_study(self.storage, c, self.spec), self.spec, c) is tuning.Next.RUN
                for c in others):
            self.moves += 1
            return True
        return False


@dataclass
class Objective:
    """One trial: the cell's config with the trial's choice, trained over the spec's seeds and
    recorded (bench.record) as a child run of the study's run; a setting the study already
    finished takes that result instead, and one another worker is training (in flight) takes that
    result when it finishes, unless the worker has other work (then the trial ends, uncounted)."""

    spec: SweepSpec
    cell: Cell
    target: Target
    parent_run_id: str
    datasets: dict
    report: Report
    worker: int
    elsewhere: Elsewhere | None = None  # None: wait for every setting in flight

    def __call__(self, trial) -> tuple[float, float]:
        tuning.check_room(trial, self.spec.trials)
        chosen = tuning.choice(trial, self.spec)
        chosen = config.without_inert_choice(chosen)  # what trains
        trial.set_user_attr(paired.CHOICE, json.dumps(chosen))
        try:
            cfg = config.without_inert(self.cell.config(self.target.data_dir, **chosen))
        except UsageError as exc:  # searched fields that RunConfig rejects together
            trial.set_user_attr("failure", f"{tuning.INVALID}: {exc}")
            self.report({"worker": self.worker, "study": self.cell.study, "trial": trial.number, "kind": "end",
                         "state": "FAIL", "reason": f"{tuning.INVALID}: {exc}", "epochs": 0, "seeds": 0, "choice": "-"})
            raise RunFailed(str(exc)) from None
        params = record.params(cfg, self.spec.seeds)
        key = tuning.config_key(params)
        trial.set_user_attr("config_key", key)
        trial.set_user_attr("duplicate_of", None)  # a retry inherits its attempt's attrs
        uri, sweep, study = self.target.tracking_uri, self.spec.name, self.cell.study
        dest = record.Destination(uri, sweep, f"{study.rpartition('/')[2]}-t{trial.number}", self.parent_run_id,
                                  tracking.trial_tags(sweep, study, trial.number, key) | _ablation_tags(trial),
                                  self.spec.save_model,
                                  self.target.system_metrics_s)
        index = trial.user_attrs.get("setting")
        own = self.spec.settings[index].fields if index is not None else ()  # an explicit setting's fields
        args = "".join(f" {k}={v:.3g}" if isinstance(v, float) else f" {k}={v}" for k, v in [*cfg.policy_args, *own])
        event = {"worker": self.worker, "study": study, "trial": trial.number, "epochs": cfg.epochs,
                 "seeds": len(self.spec.seeds), "choice": f"{cfg.policy}{args} {cfg.quant_up}/{cfg.quant_down}"}
        earlier = self._settled(trial, key, event)
        if self.elsewhere is not None:
            self.elsewhere.moves = 0
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
                started=lambda run_id: trial.set_user_attr("mlflow_run_id", run_id),
                after_seed=self._after_seed(trial, key), plan=self.spec.plan_params())
        except RunFailed as exc:
            trial.set_user_attr("failure", f"{tuning.DIVERGED}: {exc}")
            self.report(event | {"kind": "end", "state": "FAIL", "reason": str(exc)})
            raise
        acc, nbytes = outcome.final[names.FINAL_TEST_ACC], outcome.final[names.FINAL_COMM_BYTES]
        for name, value in zip(tuning.OBJECTIVES, (acc, nbytes)):
            trial.set_user_attr(name, value)
        self.report(event | {"kind": "end", "state": "COMPLETE", "acc": acc, "bytes": nbytes, "seeds": len(outcome.seeds),
                             "acc_std": outcome.final.get(names.std(names.FINAL_TEST_ACC))})
        return self._paired(trial, key) if self.spec.objectives == "paired" else (acc, nbytes)

    def _baseline_key(self) -> str:
        return tuning.config_key(record.params(self.cell.config(self.target.data_dir), self.spec.seeds))

    def _paired(self, trial, key: str) -> tuple[float, float]:
        """Paired objectives (reduction, paired difference) against the cell's baseline, whose seeds
        this waits for, and the verdict as the trial's constraint (paired.CONSTRAINT)."""
        baseline, me = self._baseline_key(), tuning.frozen(trial)
        own, own_bytes = paired.seed_accuracies(me), paired.seed_accuracies(me, paired.SEED_BYTES)
        if key == baseline:
            base, base_bytes = own, own_bytes
        else:  # each waits for the baseline's seeds (accuracy and bytes are noted one after the other)
            base = paired.paired_accuracies(trial, baseline, set(own))
            base_bytes = paired.paired_accuracies(trial, baseline, set(own), prefix=paired.SEED_BYTES)
        if not base_bytes:
            raise RunFailed("the cell's baseline has no finished seed to pair with")
        from reports import noise

        values, constraint = paired.paired_values(
            own, base, sum(own_bytes.values()) / len(own_bytes), sum(base_bytes.values()) / len(base_bytes),
            self.spec.margin_pp, noise.looks(self.spec.seeds_min, len(self.spec.seeds)))
        paired.set_verdict(trial, -self.spec.margin_pp if key == baseline else constraint)
        return values

    def _after_seed(self, trial, key: str):
        """Each finished seed's accuracy and bytes are noted on the trial (where paired objectives and
        adaptive seeds read them). Adaptive seeds: a setting other than the baseline stops once its
        paired verdict against the baseline is decided (from the seeds_min-th seed on;
        reports/noise.py). The baseline trains every seed: every other setting is paired with it."""
        from reports import noise  # numpy and scipy only: the report's statistics, not the report

        baseline = self._baseline_key()
        looks = noise.looks(self.spec.seeds_min, len(self.spec.seeds))
        own: dict[int, float] = {}

        def after(seed: int, final: dict[str, float]) -> bool:
            own[seed] = final[names.FINAL_TEST_ACC]
            paired.record_seed(trial, seed, own[seed], final[names.FINAL_COMM_BYTES])
            if self.spec.seeds_min is None or key == baseline or len(own) < self.spec.seeds_min:
                return False
            pair = paired.paired_accuracies(trial, baseline, set(own))
            return noise.decided(own, pair, self.spec.margin_pp, looks)

        return after

    def _settled(self, trial, key: str, event: dict):
        """The finished trial whose result this one takes, or None when this one trains its setting.

        While an earlier trial is training the setting, this one either ends (tuning.InFlight) when
        the worker has other work, or waits for it, tagged duplicate_of. If that trial stops
        unfinished (its worker died or was interrupted), this one ends too: the retry trains it.
        """
        declared_by = time.monotonic() + DECLARE_WAIT_S
        waiting_for = None
        while True:
            held = tuning.holder(trial, key)
            if held.done is not None:
                return held.done
            if held.training is None:
                if waiting_for is not None:
                    trial.set_user_attr("duplicate_of", None)
                    self._move_on(trial, f"trial {waiting_for} stopped before it finished this setting", event)
                if held.undeclared and time.monotonic() < declared_by:
                    time.sleep(DECLARE_POLL_S)
                    continue
                return None
            if held.training.number != waiting_for:
                if waiting_for is None and self.elsewhere is not None and self.elsewhere(self.cell, trial):
                    self._move_on(trial, f"trial {held.training.number} is training this setting", event)
                waiting_for = held.training.number
                trial.set_user_attr("duplicate_of", waiting_for)
                self.report(event | {"kind": "in_flight", "of": waiting_for})
            time.sleep(WAIT_POLL_S)

    def _move_on(self, trial, reason: str, event: dict) -> None:
        trial.set_user_attr("failure", f"{tuning.IN_FLIGHT}: {reason}")
        self.report(event | {"kind": "moved", "reason": reason})
        raise tuning.InFlight(reason)

    def _duplicate(self, trial, earlier, dest, params, event) -> tuple[float, float]:
        """Take `earlier`'s result: its values in Optuna, its final metrics in a run tagged duplicate_of."""
        trial.set_user_attr("duplicate_of", earlier.number)
        run_id = tracking.record_duplicate(dest.uri, dest.experiment, dest.name, dest.parent_run_id,
                                           dict(dest.tags) | {"duplicate_of": str(earlier.number)}, params,
                                           earlier.user_attrs["mlflow_run_id"])
        trial.set_user_attr("mlflow_run_id", run_id)
        for name in tuning.OBJECTIVES:  # what the summary reads
            if name in earlier.user_attrs:
                trial.set_user_attr(name, earlier.user_attrs[name])
        if paired.CONSTRAINT in earlier.user_attrs:
            paired.set_verdict(trial, earlier.user_attrs[paired.CONSTRAINT])
        self.report(event | {"kind": "duplicate", "of": earlier.number})
        if earlier.values is None:  # it diverged
            trial.set_user_attr("failure", f"duplicate of trial {earlier.number}: {earlier.user_attrs['failure']}")
            raise RunFailed(f"duplicate of trial {earlier.number}, which failed")
        return tuple(earlier.values)

    def _dataset(self, cfg) -> data.Dataset:
        key = cfg.data_key()
        if key not in self.datasets:
            self.datasets[key] = cfg.load_data()
        return self.datasets[key]


def _ablation_tags(trial) -> dict[str, str]:
    """An ablation step's run says which step it is and which trial's setting it ablates."""
    if paired.ABLATION not in trial.user_attrs:
        return {}
    return {names.ABLATION: trial.user_attrs[paired.ABLATION], names.ABLATION_OF: str(trial.user_attrs[names.ABLATION_OF])}


class _Progress:
    """A Sink that reports each epoch of a trial's seed to the console."""

    def __init__(self, report: Report, event: dict):
        self.report, self.event = report, event

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.report(self.event | {"kind": "epoch", "epoch": epoch, "acc": metrics.get("test/acc")})

    def log_final(self, metrics: dict[str, float]) -> None:
        pass


# ---- worker processes ---------------------------------------------------------------------------


def _run_processes(spec, target, parents, workers: int, console, threads: int = 1) -> int:
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's and SQLAlchemy's state
    events = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(spec, target, parents, i, events, threads), name=f"sweep-worker-{i}")
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


def _worker_main(spec, target, parents, index: int, events, threads: int = 1) -> None:
    from bench.plugins import load_plugin

    # One thread per worker process by default: N workers on N cores beat N oversubscribed thread
    # pools (`make bench` compares the layouts). A sweep of one worker runs in the calling process,
    # on all its threads.
    torch.set_num_threads(threads)
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
