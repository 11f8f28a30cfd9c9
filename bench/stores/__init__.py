"""The stores many processes share: MLflow's runs and Optuna's studies, in SQLite or PostgreSQL.

Any number of processes (`bench run`, `bench sweep` and its workers, `reports`, `bench privacy`)
may open the same store at the same moment, fresh or not:

    client = tracking_client("sqlite:///mlflow.db")      # an MlflowClient, patient with a busy file
    storage = optuna_storage("sqlite:///optuna.db", ...)  # an Optuna RDBStorage

The first open in a process creates or upgrades the schema while holding the store's schema lock
(lock.py), after checking that the store is not broken (health.py): a broken store is a
StoreFault naming the store, what is wrong and the repair command (repair.py), raised before
anything is written. Calls through the client wait out a busy SQLite file (patience.py).
"""

from __future__ import annotations

from bench.errors import StoreFault, UsageError
from bench.stores import health
from bench.stores.lock import schema_lock, shown, sqlite_path
from bench.stores.patience import BUSY_WAIT_S, PatientClient, call
from bench.stores.repair import repair

_READY: set[str] = set()  # tracking URIs whose schema this process has already checked


def repair_hint(uri: str) -> str:
    return f"repair it with `python -m bench store repair {shown(uri)}` (keeps every run)"


def check(uri: str) -> None:
    """Raise StoreFault when the SQLite store at `uri` exists and is broken."""
    path = sqlite_path(uri)
    problem = path and health.diagnose(path)
    if problem:
        raise StoreFault(f"store {shown(uri)} is broken: {problem}; {repair_hint(uri)}")


def describe(uri: str) -> str:
    """One line on the store at `uri` for `bench store check`; UsageError when it does not exist."""
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise UsageError(f"store: no SQLite store at {uri}")
    check(uri)
    return f"{shown(uri)}: usable"


def tracking_client(uri: str) -> PatientClient:
    """An MlflowClient for `uri`, its schema created or upgraded by one process at a time."""
    from mlflow.tracking import MlflowClient

    if uri not in _READY and not uri.startswith(("http://", "https://", "databricks")):
        with schema_lock(uri):
            check(uri)
            _create_tracking_schema(uri)
        _READY.add(uri)
    return PatientClient(MlflowClient(uri), uri)


def _create_tracking_schema(uri: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    try:
        # MLflow creates and migrates the tables when its store opens; the store itself is cached by the client.
        call(uri, SqlAlchemyStore, uri, "mlruns")
    except MlflowException as exc:  # a schema MLflow cannot use (made by a newer MLflow, say)
        reason = str(exc.message).strip().splitlines()[0]
        raise StoreFault(f"store {shown(uri)}: {reason[:300]}; {repair_hint(uri)}") from None


def optuna_storage(url: str, **kwargs):
    """An Optuna RDBStorage for `url` (kwargs as RDBStorage's), its tables created by one process at a time.

    SQLite connections wait up to BUSY_WAIT_S seconds for another writer instead of failing.
    """
    from optuna.storages import RDBStorage

    if sqlite_path(url) is not None:
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": BUSY_WAIT_S}} | kwargs.get("engine_kwargs", {})
    with schema_lock(url):
        check(url)
        try:
            return RDBStorage(url, **kwargs)
        except StoreFault:
            raise
        except RuntimeError as exc:  # Optuna's "no longer compatible with the table schema"
            reason = str(exc).strip().splitlines()[0]
            raise StoreFault(f"store {shown(url)}: {reason[:300]}; {repair_hint(url)}") from None

