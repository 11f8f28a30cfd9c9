"""Optuna, and nothing else in the project imports it.

One multi-objective study per cell: maximize final/test_acc, minimize final/comm_bytes. What a
trial's state means for a sweep (the resume rule):

    COMPLETE                          finished: counts towards the cell's `trials`
    FAIL, user attr failure=diverged  finished (a NaN loss is a result of its config): counts
    FAIL, failure=invalid: ...        finished (searched fields RunConfig rejects together): counts
    RUNNING, WAITING                  claimed: counts; a RUNNING trial whose worker stops beating
                                      is failed by the next worker and re-queued as WAITING with
                                      the same params (RetryHeartbeatStaleTrialCallback, up to MAX_RETRY)
    FAIL, anything else               did not finish (worker died, Ctrl-C, surplus): does not count
    user attr duplicate_of = N        the setting had finished as trial N: took N's result in
                                      seconds, does not count; while RUNNING, it waits for trial N,
                                      which is training the setting (in flight), to finish
    FAIL, failure=in flight: ...      proposed a setting another trial was training, while its worker
                                      had other work: moved on; does not count

So running a sweep again only adds what is missing, a trial is never run twice to completion, and
no setting is trained twice: a trial whose setting is in flight on another worker waits for that
result only when its worker has nothing else to do (holder, waiting).
A cell is also done when every distinct setting it can run has finished (SweepSpec.size), or when
the last DUPLICATE_LIMIT trials the sampler proposed were all duplicates (it keeps proposing what
is known: the search has converged).
Storages: any SQLAlchemy URL Optuna accepts (sqlite:///optuna.db, postgresql://...), or
`journal:PATH` for a journal file on a shared file system (no heartbeats there: a trial of a dead
worker stays RUNNING and must be failed by hand).
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import warnings
from dataclasses import dataclass

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from bench import names, stores
from bench.stores.lock import shown
from bench.errors import RunFailed, StoreFault, UsageError
from bench.paired import ABLATION, ABLATION_CHOICE, plan_ablation
from bench.space import Range
from bench.spec import BASELINE, Cell, Setting, SweepSpec

DEFAULT_STORAGE = "sqlite:///optuna.db"
OBJECTIVES = (names.FINAL_TEST_ACC, names.FINAL_COMM_BYTES)
DIRECTIONS = ("maximize", "minimize")  # of OBJECTIVES
# spec.objectives = "paired": the reduction against the cell's baseline (x) and the paired accuracy
# difference from it (pp, the mean over common seeds), both maximized; feasible when the verdict at
# the margin is non-inferior (CONSTRAINT).
PAIRED_OBJECTIVES = ("reduction", "paired_delta_pp")
PAIRED_DIRECTIONS = ("maximize", "maximize")
MAX_RETRY = 2  # re-queues of a trial whose worker died; a config that kills workers stops there
DUPLICATE_LIMIT = 20  # consecutive duplicate proposals that end a cell
DIVERGED = "diverged"
INVALID = "invalid"  # a searched combination RunConfig rejects (e.g. refresh_threshold with cache_views 2)
SURPLUS = "surplus"
IN_FLIGHT = "in flight"

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)
# The trials a sweep fails on purpose (diverged, surplus, in flight) are reported by its console;
# Optuna's warning would add a traceback to each. An uncaught error is re-raised, not lost.
logging.getLogger("optuna.study._optimize").setLevel(logging.ERROR)


class Surplus(Exception):
    """Raised by a trial that found its cell already full (two workers asked at the same time)."""


class InFlight(Exception):
    """Raised by a trial proposed a setting that another trial is training, when its worker has other
    work: the trial ends failed (user attr failure = "in flight: ..."), uncounted, and the worker
    moves on."""


class Next(enum.Enum):
    RUN = "run"  # a trial is waiting or there is room for a new one
    BUSY = "busy"  # every remaining trial is running on some worker
    DONE = "done"


def open_storage(url: str, heartbeat: int | None):
    """The storage at `url`; a one-line UsageError when it cannot be opened, a StoreFault when it is broken."""
    try:
        if url.startswith("journal:"):
            return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        connect = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
        storage = stores.optuna_storage(
            url, engine_kwargs=connect, heartbeat_interval=heartbeat, grace_period=heartbeat and 3 * heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
    except StoreFault:
        raise
    except Exception as exc:  # SQLAlchemy's and the drivers' errors share no base class we can name here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"storage: cannot open {shown(url)} ({type(exc).__name__}: {reason})") from None
    if storage.engine.name == "sqlite":
        _serialize(storage.engine)
    return storage


def _serialize(engine) -> None:
    """Make every SQLite transaction take the write lock when it begins.

    Python's sqlite3 defers BEGIN to the first write, so two workers can both read a WAITING trial
    before either marks it RUNNING, and both run it (the row lock Optuna asks for exists only in
    PostgreSQL and MySQL). BEGIN IMMEDIATE makes the read and the write one step.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed


def has_heartbeat(storage) -> bool:
    return isinstance(storage, RDBStorage) and storage.heartbeat_interval is not None


def open_study(storage, cell: Cell, spec: SweepSpec) -> optuna.Study:
    """The cell's study, created on first use with the baseline enqueued as its first trial and
    the spec's explicit settings after it (user attr `setting` = their index). A setting added to
    the spec since is enqueued when the study is opened again; one already there is not.

    A study that exists with other fixed fields or seeds (the spec changed) is a UsageError: its
    trials would not be comparable.
    """
    paired = spec.objectives == "paired"
    study = optuna.create_study(storage=storage, study_name=cell.study, load_if_exists=True,
                                directions=list(PAIRED_DIRECTIONS if paired else DIRECTIONS))
    # The objectives are part of what a stored study must match (a paired study's values are not bytes).
    fields = json.dumps(cell.params() | {"seeds": list(cell.seeds)} | ({"objectives": "paired"} if paired else {}),
                        sort_keys=True, default=list)
    stored = study.user_attrs.get("cell")
    if stored is None:
        study.set_user_attr("cell", fields)
        # the dashboard's axes and columns say what they are
        study.set_metric_names(list(PAIRED_OBJECTIVES if paired else OBJECTIVES))
    elif stored != fields:
        raise UsageError(f"sweep: study {cell.study} exists with other fixed fields ({stored}); "
                         "give the sweep another name or use another storage")
    # skip_if_exists: two commands starting together, or a command run again, enqueue each setting once.
    study.enqueue_trial(spec.fixed_params(Setting.of(BASELINE), cell), skip_if_exists=True)
    for i, setting in enumerate(spec.settings):
        study.enqueue_trial(spec.fixed_params(setting, cell), user_attrs={"setting": i}, skip_if_exists=True)
    return study


def make_sampler(spec: SweepSpec, seed: int):
    """The spec's sampler. With paired objectives each trial also sets its verdict as a constraint
    (set_verdict), which TPE and NSGA-II both read: they learn where the feasible (non-inferior)
    region lies and propose near its front."""
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    # constant_liar: running trials count as bad guesses, so parallel workers spread out.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def counts(trial: FrozenTrial) -> bool:
    """Whether the trial holds or will hold one of the cell's `trials` slots."""
    if trial.user_attrs.get("duplicate_of") is not None:
        return False
    if trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("failure", "").startswith((DIVERGED, INVALID))


def finished(trial: FrozenTrial) -> bool:
    return counts(trial) and trial.state in (TrialState.COMPLETE, TrialState.FAIL)


def ended(trial: FrozenTrial) -> bool:
    """Finished, or a duplicate that took a finished trial's result."""
    return finished(trial) or (trial.user_attrs.get("duplicate_of") is not None
                               and trial.state in (TrialState.COMPLETE, TrialState.FAIL))


def next_step(study: optuna.Study, spec: SweepSpec, cell: Cell | None = None) -> Next:
    """What a worker does next in the cell's study. With spec.ablation, the search's end plans the
    ablation of its best feasible setting (plan_ablation) and the cell is done when its steps are."""
    optuna.storages.fail_stale_trials(study)  # a no-op without heartbeats
    trials = study.get_trials(deepcopy=False)
    if not (sum(finished(t) for t in trials) >= spec.trials or exhausted(trials, spec)):
        if any(t.state == TrialState.WAITING for t in trials) or sum(counts(t) for t in trials) < spec.trials:
            return Next.RUN
        return Next.BUSY
    if not spec.ablation:
        return Next.DONE
    if ABLATION not in study.user_attrs:
        if any(t.state == TrialState.RUNNING for t in trials):
            return Next.BUSY  # the best setting is not known until every search trial has ended
        return Next.RUN if plan_ablation(study, spec, cell or spec.cells[0]) else Next.DONE
    steps = [t for t in trials if ABLATION in t.user_attrs]
    if all(ended(t) for t in steps):
        return Next.DONE
    return Next.RUN if any(t.state == TrialState.WAITING for t in steps) else Next.BUSY


def exhausted(trials: list[FrozenTrial], spec: SweepSpec) -> bool:
    """Every distinct setting has finished and no explicit setting waits for its trial (it may turn
    out a duplicate, but each setting of the spec has one), or the last DUPLICATE_LIMIT proposals
    were duplicates."""
    waiting = any(t.state == TrialState.WAITING for t in trials)
    if not waiting and len({t.user_attrs.get("config_key") for t in trials if finished(t)}) >= spec.size():
        return True
    last = [t for t in trials if ended(t)][-DUPLICATE_LIMIT:]
    return len(last) == DUPLICATE_LIMIT and all(t.user_attrs.get("duplicate_of") is not None for t in last)


@dataclass(frozen=True)
class Holder:
    """Who has a trial's setting, from one read of the study: the earliest finished trial that ran it
    (`done`), else the earliest earlier trial training it now (`training`); `undeclared`: an earlier
    running trial has not yet said which setting it trains (it may be this one)."""

    done: FrozenTrial | None
    training: FrozenTrial | None
    undeclared: bool


def holder(trial: Trial, config_key: str) -> Holder:
    """Earlier trials win a setting: of two trials proposed the same one at once, the lower number
    trains it, and the other sees it in flight (after waiting, if need be, for it to declare)."""
    trials = [t for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number]
    done = next((t for t in trials if finished(t) and t.user_attrs.get("config_key") == config_key), None)
    running = [t for t in trials if t.number < trial.number and t.state == TrialState.RUNNING]
    training = next((t for t in running if t.user_attrs.get("config_key") == config_key
                     and t.user_attrs.get("duplicate_of") is None), None)
    return Holder(done, training, any("config_key" not in t.user_attrs for t in running))


def room_for_another(trial: Trial, spec: SweepSpec) -> bool:
    """Whether the trial's cell has other work than its setting in flight: a waiting trial, or a slot
    and a setting nobody has finished or is training."""
    trials = [t for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number]
    if any(t.state == TrialState.WAITING for t in trials):
        return True
    taken = {t.user_attrs.get("config_key") for t in trials if finished(t) or (
        t.state == TrialState.RUNNING and t.user_attrs.get("duplicate_of") is None)}
    return sum(counts(t) for t in trials) < spec.trials and len(taken - {None}) < spec.size()


def run_one(study: optuna.Study, objective) -> None:
    """Ask for one trial (a waiting one first), run `objective` on it and tell its outcome.

    A RunFailed, Surplus or InFlight fails the trial and returns; Ctrl-C fails it, re-queues its params and
    re-raises; the heartbeat of a trial is kept while it runs.
    """
    numbers = []
    try:
        study.optimize(lambda t: numbers.append(t.number) or objective(t), n_trials=1, catch=(RunFailed, Surplus, InFlight))
    except KeyboardInterrupt:
        if numbers:  # queued again exactly as a trial whose heartbeat stopped
            RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, study.get_trials(deepcopy=False)[numbers[0]])
        raise


def frozen(trial: Trial) -> FrozenTrial:
    return next(t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number == trial.number)


def retried(trial: Trial) -> list[int]:
    """Numbers of the earlier attempts this trial repeats (their worker died or was interrupted)."""
    return RetryHeartbeatStaleTrialCallback.retry_history(frozen(trial))


def check_room(trial: Trial, n_trials: int) -> None:
    """Raise Surplus when workers asking at once created more new trials than the cell holds.

    The lower trial number wins; a trial re-queued from the waiting list always runs.
    """
    me = frozen(trial)
    if "fixed_params" in me.system_attrs or "failed_trial" in me.system_attrs:
        return
    before = sum(counts(t) for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number)
    if before >= n_trials:
        trial.set_user_attr("failure", f"{SURPLUS}: the cell already had {n_trials} trials")
        raise Surplus


def choice(trial: Trial, spec: SweepSpec) -> dict:
    """The trial's choice: an ablation step's or an explicit setting's exactly (user attrs
    `ablation_choice`, `setting`), else the sampler's."""
    from bench import ablation

    if ABLATION_CHOICE in trial.user_attrs:
        exact = ablation.normal(json.loads(trial.user_attrs[ABLATION_CHOICE]))
        suggest(trial, spec, spec.fixed_params(Setting.of(exact)))  # the sampler learns from its params
        return exact
    index = trial.user_attrs.get("setting")
    if index is None:
        return suggest(trial, spec)
    suggest(trial, spec, spec.fixed_params(spec.settings[index]))
    return spec.settings[index].choice()


def suggest(trial: Trial, spec: SweepSpec, given: dict | None = None) -> dict:
    """The sampler's choice: policy, its arguments, codecs and theirs, searched RunConfig fields
    (floats rounded, Range.round); a policy's fields are named `<policy>.<field>`, a codec's
    arguments `quant_up.<codec>.<arg>` (and quant_down), a RunConfig field `field.<name>`.

    `given`: the params a fixed trial was enqueued with (SweepSpec.fixed_params). One outside a
    categorical's choices (an ablation step back to a default the spec does not search) is no value
    Optuna can record: it is left out of the trial's params, and the trial's choice holds it."""
    def pick(name: str, rng: Range):
        if given is not None and rng.choices is not None and name in given and given[name] not in rng.choices:
            return given[name]
        if rng.choices is not None:
            return trial.suggest_categorical(name, list(rng.choices))
        if not rng.is_float:
            return trial.suggest_int(name, rng.low, rng.high, log=rng.log)
        return rng.round(trial.suggest_float(name, rng.low, rng.high, log=rng.log))

    def args(prefix: str, space: dict) -> tuple:
        return tuple((field, pick(f"{prefix}.{field}", rng)) for field, rng in space.items())

    policy = pick("policy", Range(choices=tuple(spec.policies)))
    choice = {"policy": policy, "policy_args": args(policy, spec.space(policy))}
    for direction in ("quant_up", "quant_down"):
        codec = pick(direction, Range(choices=tuple(getattr(spec, direction))))
        choice[direction] = codec
        choice[f"{direction}_args"] = args(f"{direction}.{codec}", spec.codec_space(codec))
    return choice | dict(args("field", dict(spec.fields)))


def config_key(params: dict) -> str:
    """A stable hash of a run's resolved params (the data folder, which is per machine, left out)."""
    text = json.dumps({k: v for k, v in params.items() if k != "data_dir"}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Summary:
    """One cell's standing: finished trials, diverged ones, and the Pareto front's extremes."""

    study: str
    done: int
    failed: int
    running: int
    best_acc: float | None
    front_min_bytes: float | None
    front_size: int


def summarize(storage, cell: Cell) -> Summary:
    try:
        study = optuna.load_study(study_name=cell.study, storage=storage)
    except KeyError:
        return Summary(cell.study, 0, 0, 0, None, None, 0)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and finished(t)]  # duplicates left out
    front = [t for t in study.best_trials if finished(t)] if complete else []
    return Summary(
        study=cell.study,
        done=len(complete),
        failed=sum(finished(t) and t.state == TrialState.FAIL for t in trials),
        running=sum(t.state == TrialState.RUNNING for t in trials),
        best_acc=max((final(t)[0] for t in complete), default=None),
        front_min_bytes=min((final(t)[1] for t in front), default=None),
        front_size=len(front),
    )


def final(trial: FrozenTrial) -> tuple[float, float]:
    """(accuracy, comm bytes): the means over its seeds a trial noted (user attrs OBJECTIVES), else its
    values (a study of absolute objectives from before they were noted)."""
    if OBJECTIVES[0] in trial.user_attrs:
        return trial.user_attrs[OBJECTIVES[0]], trial.user_attrs[OBJECTIVES[1]]
    return tuple(trial.values)
