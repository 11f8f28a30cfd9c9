"""The machine's load while a run trains, as MLflow's own system metrics (system/<name>)."""

from __future__ import annotations

import threading
import time

from bench import names

SYSTEM_METRICS_INTERVAL_S = 10.0  # MLflow's own default sampling interval


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
