"""Store calls that wait out a busy SQLite file, and name the store when it really fails.

SQLite lets one writer in at a time. A process whose read transaction must become a write while
another process writes gets "database is locked" at once (waiting could deadlock); the call is
then retried, with growing pauses, for up to BUSY_WAIT_S seconds. Any other fault of the storage
itself (full disk, lost connection, a server that stopped answering) becomes a StoreFault with a
one-line reason; errors about the request (an unknown run, a name already taken) pass unchanged.
"""

from __future__ import annotations

import errno
import random
import sqlite3
import time

from bench.errors import StoreFault
from bench.stores.lock import shown

BUSY_WAIT_S = 120
BUSY = ("database is locked", "database table is locked")


def call(uri: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), retried while the store is busy; storage faults raise StoreFault."""
    deadline = time.monotonic() + BUSY_WAIT_S
    pause = 0.05
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            reason = fault(exc)
            if reason is None:
                raise
            if not any(b in reason for b in BUSY):
                raise StoreFault(f"store {shown(uri)}: {reason}") from exc
            if time.monotonic() + pause > deadline:
                raise StoreFault(f"store {shown(uri)}: still locked by other processes after {BUSY_WAIT_S} s") from exc
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(2 * pause, 2.0)


class PatientClient:
    """An MlflowClient whose every method goes through `call`."""

    def __init__(self, client, uri: str):
        self._client, self._uri = client, uri

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: call(self._uri, attr, *args, **kwargs)


def fault(exc: BaseException) -> str | None:
    """The one-line reason when `exc` (or what caused it) is a fault of the storage, else None."""
    import requests
    from sqlalchemy.exc import InterfaceError, OperationalError

    seen = exc
    while seen is not None:
        if isinstance(seen, (OperationalError, InterfaceError, sqlite3.OperationalError, requests.ConnectionError)):
            return _first_line(seen)
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT):
            return _first_line(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
