"""One MLflow run written: the Sink that records a run (MlflowRun), the data sets it used, and the
experiment it goes to.

One run = one MLflow run: params from RunConfig.to_params(), one batched log call per epoch
(per-call logging is 40x slower), final metrics, tags saying how the run was made
(bench/tracking/provenance.py), the resolved config as config.json, and on request the client and
server weights. A run that fails is ended as FAILED with its reason in the tag `failure_reason`.
Experiments are tagged as model training (KIND_TAG), so that the MLflow UI opens them on their runs.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench import names, stores
from bench.errors import StoreFault, UsageError
from bench.tracking.system import SystemMetrics

DEFAULT_URI = "sqlite:///mlflow.db"
UI_URL = "http://127.0.0.1:5000"  # where `make ui` serves a local store
# MLflow's experiment-kind tag: its UI then opens an experiment on the training runs.
KIND_TAG, KIND_TRAINING = "mlflow.experimentKind", "custom_model_development"
HISTORY_BATCH = 1000  # MLflow's limit of metrics per log_batch call
PARTITION_ARTIFACT = "partition.json"


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
