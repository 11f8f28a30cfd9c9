"""A SQLite MLflow store broken the way a crash breaks one: killed while MLflow migrates its `tags` table.

    python -m tests.bench_tests.broken_store PATH STATEMENT

builds, with MLflow's own migrations, a store at the revision before the one that widens
`tags.value` (f5a4f2784254), records RUNS runs in it, then runs that migration in a child process
that is SIGKILLed just before it executes the first SQL statement starting with STATEMENT (e.g.
"INSERT INTO _alembic_tmp_tags": the table copy of SQLite's batch mode has begun).
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import sqlalchemy
from alembic import command
from mlflow.store.db.utils import _get_alembic_config
from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

BEFORE = "4465047574b1"  # the revision before f5a4f2784254, which rebuilds `tags`
RUNS = 3


def build(path: Path, statement: str) -> None:
    uri = f"sqlite:///{path}"
    _migrate(uri, BEFORE)
    _record_runs(uri)
    child = subprocess.run([sys.executable, "-m", "tests.bench_tests.broken_store", str(path), statement, "--crash"],
                           env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr


def _migrate(uri: str, revision: str, crash_at: str | None = None) -> None:
    engine = sqlalchemy.create_engine(uri)
    if crash_at:
        @sqlalchemy.event.listens_for(engine, "before_cursor_execute")
        def _crash(conn, cursor, statement, *args):
            if statement.lstrip().startswith(crash_at):
                os.kill(os.getpid(), signal.SIGKILL)
    else:
        InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(uri)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _record_runs(uri: str) -> None:
    """RUNS finished runs in experiment 0, each with a tag, a param and a metric, as MLflow stored them then."""
    engine = sqlalchemy.create_engine(uri)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO experiments VALUES (0, 'Default', 'mlruns/0', 'active', 0, 0)")
        for i in range(RUNS):
            run = f"{i:032x}"
            conn.exec_driver_sql(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES "
                f"('{run}', 'run{i}', 'LOCAL', '', '', 'u', 'FINISHED', {i}, {i + 1}, '', 'active', 'mlruns/0/{run}', 0)")
            conn.exec_driver_sql(f"INSERT INTO tags VALUES ('mlflow.runName', 'run{i}', '{run}')")
            conn.exec_driver_sql(f"INSERT INTO params VALUES ('seed', '{i}', '{run}')")
            conn.exec_driver_sql(f"INSERT INTO metrics VALUES ('test/acc', {i / 10}, 0, '{run}', 0, 0)")
            conn.exec_driver_sql(f"INSERT INTO latest_metrics VALUES ('test/acc', {i / 10}, 0, 0, 0, '{run}')")


if __name__ == "__main__":
    if sys.argv[3:] == ["--crash"]:
        _migrate(f"sqlite:///{sys.argv[1]}", "f5a4f2784254", crash_at=sys.argv[2])
    else:
        build(Path(sys.argv[1]), sys.argv[2])
