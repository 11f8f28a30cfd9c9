"""One process at a time creates, upgrades or repairs a store's schema.

SQLite: an exclusive flock on `<file>.lock` beside the database; the kernel releases it when its
holder dies, so a crash never leaves it held. PostgreSQL: a session advisory lock, which also
serialises processes on other machines. Other stores (an mlflow server) manage their own schema.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
import zlib
from pathlib import Path

from bench.errors import StoreFault

WAIT_S = 300  # longest wait for another process's schema work (a full MLflow migration takes ~10 s)
ADVISORY_KEY = zlib.crc32(b"splitbench schema")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI; None for other URIs and in-memory databases."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None


def shown(uri: str) -> str:
    """The URI as messages print it: its password, if it has one, replaced by ***."""
    head, sep, tail = uri.rpartition("@")
    if not sep or "://" not in head:
        return uri
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':')[0]}:***@{tail}" if ":" in user else uri


@contextlib.contextmanager
def schema_lock(uri: str):
    path = sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as handle:
            _flock(handle, uri)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif uri.startswith("postgresql"):
        with _advisory_lock(uri):
            yield
    else:
        yield


def _flock(handle, uri: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StoreFault(f"store {shown(uri)}: another process held its schema lock for over {WAIT_S} s") from None
            time.sleep(0.05)


@contextlib.contextmanager
def _advisory_lock(uri: str):
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"SET lock_timeout = '{WAIT_S}s'"))
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
    finally:
        engine.dispose()
