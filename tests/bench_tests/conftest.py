"""Real servers for the distributed sweep tests: a PostgreSQL server and an `mlflow server` on it.

Both bind to 127.0.0.1 on free ports, keep their files in a temporary folder and are stopped at
the end of the session. PostgreSQL refuses to run as root, so as root it runs as the `postgres`
user (Debian's package creates it). Skipped, with the reason, where the binaries are missing;
.ci/run installs them.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

DATABASES = ("optuna", "mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """Debian keeps the server binaries off PATH, in /usr/lib/postgresql/<version>/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).resolve().parent if on_path else None


@pytest.fixture(scope="session")
def postgres():
    """URL prefix `postgresql://postgres@127.0.0.1:PORT/` of a fresh server with DATABASES created."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package postgresql; .ci/run installs it)")
    user = {}
    root = Path(tempfile.mkdtemp(prefix="splitbench-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        os.chown(root, account.pw_uid, account.pw_gid)
        user = {"user": account.pw_uid, "group": account.pw_gid}
    port = free_port()
    data = root / "data"

    def pg(*args, **kwargs):
        return subprocess.run([str(bindir / args[0]), *args[1:]], check=True, capture_output=True, text=True,
                              cwd=root, **user, **kwargs)

    pg("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    pg("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
       "-o", f"-h 127.0.0.1 -p {port} -k {root} -F", "start")
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in DATABASES:
                cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory):
    """URL of an `mlflow server` whose runs live in PostgreSQL and whose artifacts in a temporary folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres + "mlflow",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True,  # its own group: stopped whole
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(url + "/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
