"""A sweep's runs: a parent run per study, a nested run per trial, and what a retried or repeated
trial does to the runs of earlier attempts (superseded, adopted, duplicated)."""

from __future__ import annotations

import time

from bench import names, stores
from bench.tracking.runs import experiment_id


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
