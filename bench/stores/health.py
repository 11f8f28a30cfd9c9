"""What is wrong with an existing SQLite store, found before anything is written to it.

An interrupted schema upgrade (a crash, or two processes upgrading at once before splitbench
serialised them) leaves either a `_alembic_tmp_<table>` copy behind or a version table that does
not hold exactly one row. MLflow and Optuna would then fail on every open, each with its own
traceback; `diagnose` names the fault in words instead. Stores whose version is simply old are
not broken: opening them upgrades them (MLflow) or says how to (Optuna).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

TMP_PREFIX = "_alembic_tmp_"
MLFLOW_TABLES = {"experiments", "runs"}
OPTUNA_TABLES = {"studies", "trials"}


def tables(path: Path) -> set[str]:
    with _read(path) as con:
        return {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def kind(names: set[str]) -> str | None:
    """'mlflow', 'optuna' or None (empty, or someone else's database)."""
    if MLFLOW_TABLES <= names:
        return "mlflow"
    if OPTUNA_TABLES <= names:
        return "optuna"
    return None


def diagnose(path: Path) -> str | None:
    """What is wrong with the store in `path`, in a few words; None when it is usable or absent."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    names = tables(path)
    leftovers = sorted(n for n in names if n.startswith(TMP_PREFIX))
    if leftovers:
        return f"a schema upgrade was interrupted (leftover table {', '.join(leftovers)})"
    if kind(names) is None:
        return None
    versions = 0
    if "alembic_version" in names:
        with _read(path) as con:
            versions = con.execute("SELECT COUNT(*) FROM alembic_version").fetchone()[0]
    if versions != 1:
        return f"its schema version table holds {versions} rows instead of 1"
    return None


def _read(path: Path) -> contextlib.closing:
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60))
