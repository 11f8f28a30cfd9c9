"""Runs read back, and added to once finished: plain data out for the report, a run's config and
client weights for an attack, and what the report and an attack attach to the runs they read.
Readers never import mlflow.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench import stores
from bench.errors import UsageError
from bench.tracking.runs import PARTITION_ARTIFACT, check_reachable


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
