"""Many processes, one store: simultaneous commands on fresh stores, busy files, broken stores and their repair."""

import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

from bench import cli, names, stores, tracking, tuning
from bench.errors import StoreFault
from bench.stores import patience
from bench.stores.lock import shown
from tests.bench_tests import broken_store
from tests.bench_tests.test_sweep import SMOKE_STUDIES, assert_each_finished_trial_has_one_run, child_runs, studies
from tests.conftest import ROOT, SMALL, run_cli

# The smallest `bench run`: what is measured here is the store, not the training.
TINY = [*SMALL, "--epochs", "1", "--train-subset", "64", "--test-subset", "32"]


def start_runs(cwd, n, env=None):
    cmd = [sys.executable, "-m", "bench", "run", *TINY]
    return [subprocess.Popen(cmd, cwd=cwd, env={"PYTHONPATH": str(ROOT), **(env or {})}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(n)]


def finish(procs, timeout=600):
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    return outs


def leftovers(path):
    with sqlite3.connect(path) as con:
        return [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE name LIKE '\\_alembic\\_tmp\\_%' ESCAPE '\\'")]


def dump(path):
    with sqlite3.connect(path) as con:
        return list(con.iterdump())


def finished_runs(uri, experiment="runs"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([exp.experiment_id]) if r.info.status == "FINISHED"]


def simultaneous_runs_on_a_fresh_store(tmp_path, rounds, n):
    for i in range(rounds):
        folder = tmp_path / f"round{i}"
        folder.mkdir()
        finish(start_runs(folder, n))
        assert len(finished_runs(f"sqlite:///{folder / 'mlflow.db'}")) == n
        assert leftovers(folder / "mlflow.db") == []


def test_two_runs_started_together_on_a_fresh_store_are_both_recorded(tmp_path):
    simultaneous_runs_on_a_fresh_store(tmp_path, rounds=1, n=2)


@pytest.mark.slow
def test_five_rounds_of_four_simultaneous_runs_record_twenty_runs(tmp_path):
    simultaneous_runs_on_a_fresh_store(tmp_path, rounds=5, n=4)


def test_a_busy_sqlite_file_is_waited_for_not_reported(tmp_path):
    db = tmp_path / "busy.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, holder.execute, ["COMMIT"])
    release.start()

    def write():
        with sqlite3.connect(db, timeout=0) as con:  # no busy wait of its own: fails at once while held
            con.execute("INSERT INTO t VALUES (1)")

    started = time.monotonic()
    patience.call(f"sqlite:///{db}", write)
    assert time.monotonic() - started >= 0.4
    release.join()
    holder.close()
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)


def test_a_storage_fault_names_the_store_and_other_errors_pass_unchanged(tmp_path):
    db = tmp_path / "x.db"

    def read_missing_table():
        with sqlite3.connect(db) as con:
            con.execute("SELECT * FROM nowhere")

    with pytest.raises(StoreFault, match=r"^store sqlite:///\S+x\.db: no such table: nowhere$"):
        patience.call(f"sqlite:///{db}", read_missing_table)
    with pytest.raises(KeyError):
        patience.call(f"sqlite:///{db}", {}.__getitem__, "k")


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """An MLflow store with three runs, killed while MLflow migrated its `tags` table."""
    path = tmp_path_factory.mktemp("broken") / "mlflow.db"
    broken_store.build(path, "INSERT INTO _alembic_tmp_tags")
    return path


def test_a_store_left_half_migrated_is_named_before_anything_is_written_and_repair_keeps_every_run(
        tmp_path, broken, capsys):
    shutil.copy(broken, tmp_path / "mlflow.db")
    before = (tmp_path / "mlflow.db").read_bytes()
    out = run_cli(["run", *TINY], tmp_path)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line == ("error: store sqlite:///mlflow.db is broken: a schema upgrade was interrupted (leftover table "
                    "_alembic_tmp_tags); repair it with `python -m bench store repair sqlite:///mlflow.db` "
                    "(keeps every run)")
    assert (tmp_path / "mlflow.db").read_bytes() == before

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["store", "repair", uri]) == 0
    assert capsys.readouterr().out.startswith(f"repaired {uri}: dropped _alembic_tmp_tags; schema upgraded; 3 runs kept;")
    (backup,) = tmp_path.glob("mlflow.db.bak-*")
    assert dump(backup) == dump(broken)  # the store as it was, to the row
    assert leftovers(tmp_path / "mlflow.db") == []
    kept = finished_runs(uri, "Default")
    assert sorted((r.info.run_name, r.data.params["seed"], r.data.metrics[names.TEST_ACC]) for r in kept) == [
        ("run0", "0", 0.0), ("run1", "1", 0.1), ("run2", "2", 0.2)]
    with tracking.MlflowRun(uri, "Default", "after") as run:  # the store takes new runs again
        run.log_final({names.FINAL_TEST_ACC: 0.5})
    assert len(finished_runs(uri, "Default")) == 4


def test_repair_puts_back_a_table_whose_copy_was_all_that_was_left(tmp_path, broken):
    """A crash between dropping `tags` and renaming its copy: the copy becomes `tags` again."""
    path = tmp_path / "mlflow.db"
    shutil.copy(broken, path)
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO _alembic_tmp_tags SELECT * FROM tags")
        con.execute("DROP TABLE tags")
    message = stores.repair(f"sqlite:///{path}")
    assert "_alembic_tmp_tags -> tags; schema upgraded; 3 runs kept" in message
    kept = finished_runs(f"sqlite:///{path}", "Default")
    assert sorted(r.data.tags["mlflow.runName"] for r in kept) == ["run0", "run1", "run2"]


def test_a_broken_optuna_store_stops_a_sweep_with_exit_1_before_anything_is_written(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(storage=url, study_name="kept")
    with sqlite3.connect(tmp_path / "optuna.db") as con:
        con.execute("CREATE TABLE _alembic_tmp_trials (x INTEGER)")
    with pytest.raises(StoreFault, match="leftover table _alembic_tmp_trials"):
        tuning.open_storage(url, heartbeat=None)
    out = run_cli(["sweep", "--spec", "smoke"], tmp_path)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: store sqlite:///optuna.db is broken: a schema upgrade was interrupted")
    assert "mlflow.db" not in {p.name for p in tmp_path.iterdir()}
    assert stores.repair(url).startswith(f"repaired {url}: dropped _alembic_tmp_trials; schema upgraded; 0 trials kept")
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["kept"]


def start_sweep(cwd, env=None):
    return subprocess.Popen([sys.executable, "-m", "bench", "sweep", "--spec", "smoke"], cwd=cwd,
                            env={"PYTHONPATH": str(ROOT), **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def assert_smoke_done_once(storage, tracking_uri):
    """Every smoke cell has exactly its 3 finished trials, each with one finished run."""
    trials = studies(storage)
    assert sorted(trials) == SMOKE_STUDIES
    runs = child_runs(MlflowClient(tracking_uri), "smoke")
    assert_each_finished_trial_has_one_run(trials, runs, 3)
    assert {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.slow
def test_two_sweeps_started_together_on_fresh_stores_run_each_trial_once(tmp_path):
    finish([start_sweep(tmp_path), start_sweep(tmp_path)])
    assert_smoke_done_once(f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert leftovers(tmp_path / "mlflow.db") == leftovers(tmp_path / "optuna.db") == []


@pytest.mark.slow
def test_a_report_built_while_a_sweep_writes_reads_only_whole_finished_trials(tmp_path):
    from reports.report import build

    from bench.errors import UsageError

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = start_sweep(tmp_path)
    seen = []
    try:
        while sweep.poll() is None:
            time.sleep(1)
            if (tmp_path / "mlflow.db").is_file():
                try:
                    runs = tracking.load_runs(uri, "smoke", history=(names.TEST_ACC,))
                    built = build(uri, "smoke", tmp_path / "report", log_artifacts=True)
                except UsageError:  # the experiment or its first finished trial is not there yet
                    continue
                done = [r for r in runs if r["status"] == "FINISHED" and r["tags"].get(names.ROLE) == "trial"]
                for run in done:  # a finished trial is whole: its final metrics and each epoch
                    assert names.FINAL_TEST_ACC in run["metrics"] and len(run["history"][names.TEST_ACC]) == 2
                assert built.runs >= len(done)  # the report read at least what was finished before it
                seen.append(built.runs)
    finally:
        out, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err
    assert seen and seen == sorted(seen) and seen[-1] <= 6
    assert build(uri, "smoke", tmp_path / "report").runs == 6
    assert_smoke_done_once(f"sqlite:///{tmp_path / 'optuna.db'}", uri)


def fresh_database(postgres, name):
    import psycopg2

    conn = psycopg2.connect(postgres + "postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return postgres + name


@pytest.mark.slow
def test_simultaneous_runs_and_sweeps_on_fresh_postgresql_databases(tmp_path, postgres):
    tracking_uri = fresh_database(postgres, "runs_fresh")
    finish(start_runs(tmp_path, 4, env={"MLFLOW_TRACKING_URI": tracking_uri}))
    assert len(finished_runs(tracking_uri)) == 4

    env = {"MLFLOW_TRACKING_URI": fresh_database(postgres, "sweep_runs_fresh"),
           "OPTUNA_STORAGE": fresh_database(postgres, "sweep_studies_fresh")}
    finish([start_sweep(tmp_path, env), start_sweep(tmp_path, env)])
    assert_smoke_done_once(env["OPTUNA_STORAGE"], env["MLFLOW_TRACKING_URI"])


@pytest.mark.parametrize("uri, printed", [
    ("postgresql://splitbench:s3cret@db.example:5432/optuna", "postgresql://splitbench:***@db.example:5432/optuna"),
    ("postgresql://splitbench:p@ss@db/optuna", "postgresql://splitbench:***@db/optuna"),
    ("http://admin:s3cret@mlflow.example:5000", "http://admin:***@mlflow.example:5000"),
    ("postgresql://splitbench@db/optuna", "postgresql://splitbench@db/optuna"),
    ("sqlite:///runs@home/mlflow.db", "sqlite:///runs@home/mlflow.db"),
])
def test_a_store_is_printed_without_its_password(uri, printed):
    assert shown(uri) == printed
