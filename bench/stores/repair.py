"""`python -m bench store repair URI`: make a broken or outdated store usable, keeping every record.

For SQLite: with the schema lock held, copy the file aside (`<file>.bak-<time>`), finish or undo
each interrupted table copy (a leftover `_alembic_tmp_<table>` replaces `<table>` when the
original is gone, and is dropped otherwise), then run the library's own upgrade to its latest
schema. The rows of every table are counted before and after; on any failure the copy is put
back and the store is as it was. For a database server only the upgrade runs (its schema changes
are transactional, so nothing is left half done).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from bench.errors import StoreFault, UsageError
from bench.stores import health
from bench.stores.lock import schema_lock, shown, sqlite_path


def repair(uri: str) -> str:
    """Repair the store at `uri`; returns a one-line account of what was done."""
    path = sqlite_path(uri)
    with schema_lock(uri):
        if path is None:
            return _upgrade_server(uri)
        if not path.is_file():
            raise UsageError(f"store: no SQLite store at {uri}")
        kind = health.kind(health.tables(path) | _restored_names(path))
        if kind is None:
            raise UsageError(f"store: {uri} holds neither MLflow runs nor Optuna studies")
        backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        _copy(path, backup)
        before = _row_counts(path)
        try:
            fixed = _settle_copies(path)
            _UPGRADES[kind](uri)
            after = _row_counts(path)
            lost = {t: n for t, n in before.items() if after.get(t, 0) < n}
            if lost:
                raise StoreFault(f"rows would be lost in {', '.join(sorted(lost))}")
            problem = health.diagnose(path)
            if problem:
                raise StoreFault(problem)
        except Exception as exc:
            _copy(backup, path)
            raise StoreFault(f"store {shown(uri)}: repair failed ({exc}); the store is unchanged, "
                             f"its copy is {backup}") from exc
    what = "".join(f"{step}; " for step in fixed)
    runs = after.get("runs", after.get("trials", 0))
    noun = "runs" if kind == "mlflow" else "trials"
    return f"repaired {uri}: {what}schema upgraded; {runs} {noun} kept; the store before repair is {backup}"


def _restored_names(path: Path) -> set[str]:
    """The tables the store will have once leftover copies stand in for missing originals."""
    return {n.removeprefix(health.TMP_PREFIX) for n in health.tables(path) if n.startswith(health.TMP_PREFIX)}


def _settle_copies(path: Path) -> list[str]:
    names = health.tables(path)
    done = []
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as con, con:
        for tmp in sorted(n for n in names if n.startswith(health.TMP_PREFIX)):
            table = tmp.removeprefix(health.TMP_PREFIX)
            if table in names:
                con.execute(f'DROP TABLE "{tmp}"')
                done.append(f"dropped {tmp}")
            else:
                con.execute(f'ALTER TABLE "{tmp}" RENAME TO "{table}"')
                done.append(f"{tmp} -> {table}")
    return done


def _row_counts(path: Path) -> dict[str, int]:
    """Rows per table, a leftover copy counted as the table it stands in for when that one is missing."""
    names = health.tables(path)
    counts = {}
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as con:
        for name in sorted(names):
            table = name.removeprefix(health.TMP_PREFIX)
            if name.startswith(health.TMP_PREFIX) and table in names or table == "alembic_version":
                continue
            counts[table] = con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
    return counts


def _copy(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite file, through SQLite's backup API."""
    with contextlib.closing(sqlite3.connect(src, timeout=60)) as a, contextlib.closing(sqlite3.connect(dst)) as b:
        a.backup(b)


def _upgrade_mlflow(uri: str) -> None:
    import sqlalchemy
    from mlflow.store.db.utils import _upgrade_db

    engine = sqlalchemy.create_engine(uri)
    try:
        _upgrade_db(engine)
    finally:
        engine.dispose()


def _upgrade_optuna(uri: str) -> None:
    from optuna.storages import RDBStorage

    RDBStorage(uri, skip_compatibility_check=True, skip_table_creation=True).upgrade()


_UPGRADES = {"mlflow": _upgrade_mlflow, "optuna": _upgrade_optuna}


def _upgrade_server(uri: str) -> str:
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as conn:
            names = set(sqlalchemy.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    kind = health.kind(names)
    if kind is None:
        raise UsageError(f"store: {shown(uri)} holds neither MLflow runs nor Optuna studies")
    _UPGRADES[kind](uri)
    return f"upgraded {shown(uri)} to the latest {kind} schema"
