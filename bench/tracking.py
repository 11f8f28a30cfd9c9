"""MLflow, and nothing else in the project imports it (but bench/stores, which opens its stores).

One run = one MLflow run: params from RunConfig.to_params(), one batched log call per epoch
(per-call logging is 40x slower), final metrics, tags saying how the run was made (git commit,
package versions, device, seed), the resolved config as config.json, and on request the client
and server weights. A run that fails is ended as FAILED with its reason in the tag
`failure_reason`.
Every client comes from stores.tracking_client: the store's schema made by one process at a
time, a busy SQLite file waited for, storage faults raised as StoreFault.
A setting trained over several seeds is one run of means with a nested run per seed
(bench/record.py writes them through MlflowRun). Experiments are tagged as model training
(KIND_TAG), so that the MLflow UI opens them on their runs.
Each run also records what it trained and tested on as MLflow data set inputs (the UI's Dataset
column: name, a digest of the exact images, sizes, partition), the clients' class counts as
partition.json, and, unless switched off, the machine's system metrics while it trains
(SystemMetrics: MLflow's own `system/*` names).
Privacy attacks (bench/privacy.py) read a run's config and client weights back and add their
scores, settings and pictures to the same run.
"""

from __future__ import annotations

import json
import platform
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from bench import names, stores
from bench.errors import StoreFault, UsageError

DEFAULT_URI = "sqlite:///mlflow.db"
UI_URL = "http://127.0.0.1:5000"  # where `make ui` serves a local store
# MLflow's experiment-kind tag: its UI then opens an experiment on the training runs.
KIND_TAG, KIND_TRAINING = "mlflow.experimentKind", "custom_model_development"
HISTORY_BATCH = 1000  # MLflow's limit of metrics per log_batch call


SYSTEM_METRICS_INTERVAL_S = 10.0  # MLflow's own default sampling interval


@dataclass(frozen=True)
class DataInput:
    """One data set a run used, as MLflow records it (mlflow.entities.Dataset + its input tags).

    digest: of the exact images and labels (bench.data.digest); source: where they came from;
    context: "training" or "test" (MLflow's `mlflow.data.context`); profile: sizes and partition,
    shown in the UI's data set panel; tags: further input tags (e.g. the partition)."""

    name: str
    digest: str
    source: str
    context: str
    profile: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)


def check_reachable(uri: str) -> None:
    """Fail fast, before anything is written, when a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise UsageError(
            f"MLFLOW_TRACKING_URI: tracking server {uri} is unreachable ({reason}); start it or unset the variable"
        ) from None


def provenance(device: str, seed: int) -> dict[str, str]:
    """Tags that say how a result was made."""
    import mlflow

    import bench

    return {
        names.GIT_COMMIT: git_commit(),
        names.SEED: str(seed),
        names.DEVICE: device_name(device),
        names.VERSIONS: f"splitbench {bench.__version__}, torch {torch.__version__}, mlflow {mlflow.__version__}, "
        f"python {platform.python_version()}",
    }


SOURCE = Path(__file__).resolve().parents[1]  # the folder holding bench/, policies/, quantizers/


def git_commit(source: Path = SOURCE) -> str:
    """The commit of the splitbench source that is running (`-dirty` with uncommitted changes),
    wherever the command was started; 'unknown' when `source` is not the top of a git checkout
    (an installed copy, even one inside another repository)."""

    def git(*args):
        return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=5)

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != source.resolve():
            return "unknown"
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class MlflowRun:
    """A Sink that writes one MLflow run; use as a context manager so it always ends with a status."""

    def __init__(self, uri: str, experiment: str, run_name: str, *, parent_run_id: str | None = None,
                 tags: dict[str, str] | None = None):
        self.client = stores.tracking_client(uri)
        self.uri = uri
        self.experiment_id = experiment_id(self.client, experiment)
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags[names.PARENT] = parent_run_id
        self.run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags).info.run_id

    def __enter__(self) -> "MlflowRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.client.set_terminated(self.run_id, "FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.fail("interrupted (Ctrl-C)", status="KILLED")
        else:
            try:
                self.fail(str(exc) or exc_type.__name__)
            except StoreFault:
                pass  # the store cannot record the failure either: the original error is the one to report

    def fail(self, reason: str, status: str = "FAILED") -> None:
        self.client.set_tag(self.run_id, names.FAILURE_REASON, reason[:5000])
        self.client.set_terminated(self.run_id, status)

    def log_config(self, params: dict, resolved: dict) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        self.client.log_dict(self.run_id, resolved, "config.json")

    def log_inputs(self, inputs: list[DataInput]) -> None:
        """The data sets the run used, as MLflow inputs (the runs page's Dataset column)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        entries = []
        for d in inputs:
            local = Path(d.source).is_absolute()
            dataset = Dataset(d.name, d.digest, "local" if local else "code",
                              json.dumps({"uri": d.source} if local else {"tags": {"source": d.source}}),
                              profile=json.dumps(d.profile))
            tags = [InputTag("mlflow.data.context", d.context)] + [InputTag(k, str(v)) for k, v in d.tags.items()]
            entries.append(DatasetInput(dataset, tags))
        self.client.log_inputs(self.run_id, datasets=entries)

    def log_partition(self, record: dict) -> None:
        """The clients' shards (kind, sizes, class counts per client) as partition.json."""
        self.client.log_dict(self.run_id, record, PARTITION_ARTIFACT)

    def system_metrics(self, interval_s: float | None) -> "SystemMetrics":
        """A context that samples the machine's load into this run every `interval_s` seconds (None: off)."""
        return SystemMetrics(self, interval_s)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self._log_metrics(metrics, step=epoch)

    def log_final(self, metrics: dict[str, float]) -> None:
        self._log_metrics(metrics, step=0)

    def log_history(self, epochs: list[dict[str, float]]) -> None:
        """Every epoch's metrics (step = epoch) in as few batched calls as MLflow allows."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for step, record in enumerate(epochs) for k, v in record.items()]
        for i in range(0, len(metrics), HISTORY_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + HISTORY_BATCH])

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_weights(self, nets: dict[str, torch.nn.Module]) -> None:
        """Each network's state dict as weights/<name>.pt."""
        with tempfile.TemporaryDirectory() as tmp:
            for name, net in nets.items():
                path = Path(tmp) / f"{name}.pt"
                torch.save(net.state_dict(), path)
                self.client.log_artifact(self.run_id, str(path), "weights")


PARTITION_ARTIFACT = "partition.json"


class SystemMetrics:
    """MLflow's system metrics of this machine (system/cpu_utilization_percentage,
    system/system_memory_usage_megabytes, disk and network, and system/gpu_* where NVIDIA's
    management library sees a GPU) while a run trains: MLflow's collectors, sampled every
    `interval_s` seconds in a daemon thread, each sample logged at the next step through the
    store's patient client (a busy SQLite file is waited for, as for every other write). One last
    sample is taken on leaving, so every run has at least one. interval_s None: does nothing.
    Sampling failures end the sampling, never the run."""

    def __init__(self, run: "MlflowRun", interval_s: float | None):
        self.run, self.interval_s = run, interval_s
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.step = 0
        self.collectors = []

    def __enter__(self) -> "SystemMetrics":
        if self.interval_s is None:
            return self
        import logging

        import psutil
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no "GPU skipped" line per run
        self.collectors = SystemMetricsMonitor(self.run.run_id, tracking_uri=self.run.uri).monitors
        psutil.cpu_percent()  # starts the CPU share's first interval
        self.thread = threading.Thread(target=self._sample_every_interval, name="system-metrics", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.thread is None:
            return
        self.stop.set()
        self.thread.join()
        self._sample()

    def _sample_every_interval(self) -> None:
        while not self.stop.wait(self.interval_s):
            if not self._sample():
                return

    def _sample(self) -> bool:
        from mlflow.entities import Metric

        if not self.collectors:
            return False
        try:
            values = {}
            for collector in self.collectors:
                collector.collect_metrics()
                values |= collector.aggregate_metrics()
                collector.clear_metrics()
            now = int(time.time() * 1000)
            self.run.client.log_batch(self.run.run_id, metrics=[
                Metric(f"{names.SYSTEM}{k}", float(v), now, self.step) for k, v in values.items()])
        except Exception:  # a sensor or a store that fails: the run goes on without its load record
            self.collectors = []
            return False
        self.step += 1
        return True


def experiment_id(client, name: str) -> str:
    """The id of experiment `name`, created on first use (another machine may create it at the same
    time) and marked as a model-training experiment."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, tags={KIND_TAG: KIND_TRAINING})
        except MlflowException:  # another process or machine created it first
            exp = client.get_experiment_by_name(name)
    if exp.tags.get(KIND_TAG) is None:
        client.set_experiment_tag(exp.experiment_id, KIND_TAG, KIND_TRAINING)
    return exp.experiment_id


def runs_page(uri: str, experiment: str) -> str:
    """The address of `experiment`'s runs in the MLflow UI: the server's own, or `make ui`'s for a local store."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_URL
    return f"{base}/#/experiments/{experiment_id(stores.tracking_client(uri), experiment)}/runs"


# Reading runs back, for reports: plain data out, so that readers never import mlflow.


def _store_missing(uri: str) -> bool:
    """A SQLite store whose file does not exist: opening it would create an empty one, and reading must not write."""
    return uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file()


def load_runs(uri: str, experiment: str, history: tuple[str, ...] = ()) -> list[dict]:
    """Every run of `experiment`, as plain dicts.

    Each dict: run_id, name, status (FINISHED, FAILED, ...), tags, params (strings as logged),
    metrics (the latest value of each), and history: metric name -> [(step, value), ...] for the
    names in `history`, fetched only for FINISHED runs. A missing store or an unknown experiment is
    a UsageError (the latter listing the experiments that exist).
    """
    from mlflow.entities import ViewType

    check_reachable(uri)
    if _store_missing(uri):
        raise UsageError(f"no MLflow store at {uri}; run a sweep first or set MLFLOW_TRACKING_URI")
    client = stores.tracking_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        existing = sorted(e.name for e in client.search_experiments(view_type=ViewType.ALL))
        raise UsageError(f"experiment {experiment!r} not found at {uri}; existing: {', '.join(existing) or 'none'}")
    runs, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    out = []
    for run in runs:
        finished = run.info.status == "FINISHED"
        out.append({
            "run_id": run.info.run_id,
            "name": run.info.run_name,
            "status": run.info.status,
            "tags": dict(run.data.tags),
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "history": {
                name: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]
                for name in (history if finished else ())
            },
        })
    return out


def log_artifacts(uri: str, run_id: str, files: list[Path], artifact_path: str) -> None:
    """Attach existing files to a finished run (the MLflow UI shows them under `artifact_path`)."""
    client = stores.tracking_client(uri)
    for path in files:
        client.log_artifact(run_id, str(path), artifact_path)


def partition_record(uri: str, run_id: str) -> dict | None:
    """The run's partition.json (MlflowRun.log_partition), or None for a run logged without one."""
    client = stores.tracking_client(uri)
    if PARTITION_ARTIFACT not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(run_id, PARTITION_ARTIFACT, tmp)).read_text())


def fetch_client(uri: str, run_id: str, dst: Path) -> tuple[dict, Path]:
    """Run `run_id`'s config.json (as a dict) and its weights/client.pt, downloaded into `dst`.

    A missing store, an unknown run or a run logged without --save-model is a UsageError.
    """
    from mlflow.exceptions import MlflowException

    if _store_missing(uri):
        raise UsageError(f"run {run_id}: no MLflow store at {uri}; set MLFLOW_TRACKING_URI or cd to the runs' folder")
    client = stores.tracking_client(uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise UsageError(f"run {run_id}: not found in {uri}") from None
    if "weights/client.pt" not in {a.path for a in client.list_artifacts(run_id, "weights")}:
        raise UsageError(f"run {run_id} has no weights/client.pt: rerun with --save-model")
    resolved = json.loads(Path(client.download_artifacts(run_id, "config.json", str(dst))).read_text())
    return resolved, Path(client.download_artifacts(run_id, "weights/client.pt", str(dst)))


def log_privacy(uri: str, run_id: str, metrics: dict[str, float], tags: dict[str, str],
                images: dict[str, Image.Image]) -> None:
    """Add an attack's scores (step 0), its settings (tags) and its pictures (privacy/<name>) to a run."""
    from mlflow.entities import Metric, RunTag

    client = stores.tracking_client(uri)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     tags=[RunTag(k, v) for k, v in tags.items()])
    with tempfile.TemporaryDirectory() as tmp:
        for name, image in images.items():
            image.save(Path(tmp) / name)
            client.log_artifact(run_id, str(Path(tmp) / name), "privacy")
# ---- sweeps: a parent run per study, a nested child run per trial ------------------------------


def study_run(uri: str, sweep: str, study: str, params: dict, tags: dict[str, str], spec_text: str) -> str:
    """The id of `study`'s parent run in experiment `sweep`, created (RUNNING) on first use.

    Found again by its tags, so every command and machine working on the study shares it. Its
    params are the cell's fixed fields; the spec file is logged as spec.toml.
    """
    from mlflow.entities import Param

    client = stores.tracking_client(uri)
    exp_id = experiment_id(client, sweep)
    found = client.search_runs([exp_id], _role_filter(names.STUDY_ROLE, study), max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    all_tags = tags | {names.ROLE: names.STUDY_ROLE, names.STUDY: study, names.SWEEP: sweep}
    run_id = client.create_run(exp_id, run_name=study, tags=all_tags).info.run_id
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_text(run_id, spec_text, "spec.toml")
    return run_id


def end_study_run(uri: str, run_id: str, status: str) -> None:
    stores.tracking_client(uri).update_run(run_id, status=status)


def trial_tags(sweep: str, study: str, trial: int, config_key: str) -> dict[str, str]:
    """The tags that tie a child run to its Optuna trial (reports group and join on them)."""
    return {names.ROLE: names.TRIAL_ROLE, names.SWEEP: sweep, names.STUDY: study, names.TRIAL: str(trial),
            names.CONFIG_KEY: config_key}


def supersede(uri: str, sweep: str, study: str, attempts: list[int], by: int, keep: frozenset[str] = frozenset()) -> None:
    """Delete the runs of earlier attempts of a trial (their worker died or was interrupted).

    A retried trial is a new Optuna trial with the same params; its run replaces theirs, so that
    every finished trial has exactly one run. Their seed runs go too, except those in `keep` (the
    finished seeds the retry adopts). Deleted runs stay in MLflow's trash, tagged.
    """
    if not attempts:
        return
    client = stores.tracking_client(uri)
    exp = client.get_experiment_by_name(sweep)
    for role in (names.TRIAL_ROLE, names.SEED_ROLE):
        for run in client.search_runs([exp.experiment_id], _role_filter(role, study)):
            if int(run.data.tags.get(names.TRIAL, -1)) in attempts and run.info.run_id not in keep:
                client.set_tag(run.info.run_id, names.SUPERSEDED_BY, str(by))
                client.delete_run(run.info.run_id)


def finished_seeds(uri: str, sweep: str, study: str, attempts: list[int], config_key: str) -> dict[int, str]:
    """seed -> run id of each seed run that finished in an earlier attempt of the same setting."""
    if not attempts:
        return {}
    client = stores.tracking_client(uri)
    exp = client.get_experiment_by_name(sweep)
    query = (_role_filter(names.SEED_ROLE, study)
             + f" and tags.{names.CONFIG_KEY} = '{config_key}' and attributes.status = 'FINISHED'")
    return {int(r.data.tags[names.SEED]): r.info.run_id for r in client.search_runs([exp.experiment_id], query)
            if int(r.data.tags.get(names.TRIAL, -1)) in attempts}


def adopt_run(uri: str, run_id: str, parent_run_id: str, tags: dict[str, str]) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Move a finished seed run under `parent_run_id` (with the new trial's tags); its history and finals."""
    from mlflow.entities import RunTag
    client = stores.tracking_client(uri)
    moved = {k: v for k, v in tags.items() if k != names.ROLE} | {names.PARENT: parent_run_id}
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in moved.items()])
    metrics = client.get_run(run_id).data.metrics
    epochs: dict[int, dict[str, float]] = {}
    for name in metrics:
        if not names.is_final(name):
            for m in client.get_metric_history(run_id, name):
                epochs.setdefault(m.step, {})[name] = m.value
    return [epochs[step] for step in sorted(epochs)], {k: v for k, v in metrics.items() if names.is_final(k)}


def record_duplicate(uri: str, experiment: str, name: str, parent_run_id: str, tags: dict[str, str],
                     params: dict, of_run_id: str) -> str:
    """A run that takes the final metrics (and the status) of an earlier run of the same setting."""
    from mlflow.entities import Metric, Param
    client = stores.tracking_client(uri)
    earlier = client.get_run(of_run_id)
    all_tags = tags | {names.PARENT: parent_run_id}
    if names.FAILURE_REASON in earlier.data.tags:
        all_tags[names.FAILURE_REASON] = earlier.data.tags[names.FAILURE_REASON]
    run_id = client.create_run(experiment_id(client, experiment), run_name=name, tags=all_tags).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(k, v, now, 0) for k, v in earlier.data.metrics.items() if names.is_final(k)])
    client.set_terminated(run_id, earlier.info.status)
    return run_id


def _role_filter(role: str, study: str) -> str:
    escaped = study.replace("'", "\\'")
    return f"{names.role_is(role)} and tags.{names.STUDY} = '{escaped}'"
