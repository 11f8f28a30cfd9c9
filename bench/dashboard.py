"""The Optuna dashboard (optuna-dashboard) on a sweep's storage, served on 127.0.0.1.

    python -m bench dashboard [--storage URL] [--port 8080]      # make dashboard

Prints `dashboard: http://127.0.0.1:PORT/dashboard` once it listens (port 0: any free port), then
serves until interrupted. It reads the same storage as `bench sweep` (--storage, else
$OPTUNA_STORAGE, else sqlite:///optuna.db): every cell's study, its trials with their params, the
two objectives and the Pareto front, while a sweep is still running. A SQLite file that does not
exist is a one-line error (exit 2), never a new, empty store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bench import tuning
from bench.errors import UsageError
from bench.stores.lock import shown, sqlite_path

HOST = "127.0.0.1"  # never beyond this machine: the dashboard can edit studies
DEFAULT_PORT = 8080


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # one line per request would bury the address
        pass


def server(storage_url: str, port: int = DEFAULT_PORT) -> WSGIServer:
    """A WSGI server of optuna-dashboard on the storage at `storage_url`, bound to HOST:port."""
    path = sqlite_path(storage_url) or (Path(storage_url.removeprefix("journal:"))
                                        if storage_url.startswith("journal:") else None)
    if path is not None and not path.is_file():
        raise UsageError(f"storage: no Optuna store at {shown(storage_url)}; run a sweep first or pass --storage")
    storage = tuning.open_storage(storage_url, heartbeat=None)
    from optuna_dashboard import wsgi  # seconds to import: only once there is a storage to show
    try:
        return make_server(HOST, port, wsgi(storage), handler_class=_Quiet)
    except OSError as exc:
        raise UsageError(f"port: cannot listen on {HOST}:{port} ({exc.strerror or exc})") from None


def url(httpd: WSGIServer) -> str:
    return f"http://{HOST}:{httpd.server_port}/dashboard"


def serve(storage_url: str, port: int = DEFAULT_PORT, announce: Callable[[str], None] = print) -> int:
    """Serve until interrupted; the exit code."""
    with server(storage_url, port) as httpd:
        announce(f"dashboard: {url(httpd)}  (storage {shown(storage_url)}; Ctrl-C stops it)")
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0
