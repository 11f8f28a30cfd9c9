"""`bench dashboard` without a browser: what it refuses (the browser test is in test_ui_browser.py)."""

import pytest

from tests.conftest import cli


@pytest.mark.parametrize("args, message", [
    (["--storage", "sqlite:///nothing.db"], "storage: no Optuna store at sqlite:///nothing.db; run a sweep first"),
    ([], "storage: no Optuna store at sqlite:///optuna.db"),
    (["--storage", "journal:nothing.log"], "storage: no Optuna store at journal:nothing.log"),
    (["--port", "70000"], "port: must be between 0 and 65535, got 70000"),
])
def test_bad_dashboard_input_is_one_line_exit_2_and_creates_no_store(tmp_path, args, message):
    done = cli(["dashboard", *args], tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: " + message), line
    assert list(tmp_path.iterdir()) == []
