"""MLflow, and nothing else in the project imports it (but bench/stores, which opens its stores).

Every client comes from stores.tracking_client: the store's schema made by one process at a
time, a busy SQLite file waited for, storage faults raised as StoreFault. A setting trained over
several seeds is one run of means with a nested run per seed (bench/record.py writes them through
MlflowRun). Each run also records what it trained and tested on as MLflow data set inputs (the UI's
Dataset column: name, a digest of the exact images, sizes, partition), the clients' class counts
as partition.json, and, unless switched off, the machine's system metrics while it trains.
Privacy attacks (bench/privacy.py) read a run's config and client weights back and add their
scores, settings and pictures to the same run.

    runs.py        one run written (MlflowRun, its data set inputs), the experiment it goes to
    provenance.py  the tags that say how a run was made
    system.py      the machine's load while a run trains (SystemMetrics)
    reading.py     runs read back for the report and attacks, and what they attach to them
    studies.py     a sweep's runs: study parent runs, trial runs, retries and repeats
"""

from bench.tracking.provenance import SOURCE, device_name, git_commit, provenance
from bench.tracking.reading import fetch_client, load_runs, log_artifacts, log_privacy, partition_record
from bench.tracking.runs import (DEFAULT_URI, HISTORY_BATCH, KIND_TAG, KIND_TRAINING, PARTITION_ARTIFACT, UI_URL,
                                 DataInput, MlflowRun, check_reachable, experiment_id, runs_page)
from bench.tracking.studies import (adopt_run, end_study_run, finished_seeds, record_duplicate, study_run,
                                    supersede, trial_tags)
from bench.tracking.system import SYSTEM_METRICS_INTERVAL_S, SystemMetrics

__all__ = ["DEFAULT_URI", "HISTORY_BATCH", "KIND_TAG", "KIND_TRAINING", "PARTITION_ARTIFACT", "SOURCE",
           "SYSTEM_METRICS_INTERVAL_S", "UI_URL", "DataInput", "MlflowRun", "SystemMetrics", "adopt_run",
           "check_reachable", "device_name", "end_study_run", "experiment_id", "fetch_client", "finished_seeds",
           "git_commit", "load_runs", "log_artifacts", "log_privacy", "partition_record", "provenance",
           "record_duplicate", "runs_page", "study_run", "supersede", "trial_tags"]
