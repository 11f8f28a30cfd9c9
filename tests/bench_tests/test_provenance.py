"""The `git_commit` tag names the commit of the splitbench source that ran, not of the current folder."""

import shutil
import subprocess

import pytest

from bench import tracking
from tests.conftest import ROOT


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def source_commit():
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(ROOT), "rev-parse"]).returncode != 0:
        pytest.skip("the source is not a git checkout here")
    dirty = git("status", "--porcelain", "--untracked-files=no", cwd=ROOT)
    return git("rev-parse", "HEAD", cwd=ROOT) + ("-dirty" if dirty else "")


def test_commit_of_the_source_when_started_from_another_repository(source_commit, tmp_path, monkeypatch):
    """Catches: `git rev-parse HEAD` run in the folder the command was started in."""
    git("init", "-q", cwd=tmp_path)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "other", cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    assert tracking.git_commit() == source_commit != git("rev-parse", "HEAD", cwd=tmp_path)


def test_unknown_when_the_source_is_not_the_top_of_a_checkout(tmp_path):
    """An installed copy, even inside another repository (a virtual environment in a clone)."""
    assert tracking.git_commit(tmp_path) == "unknown"
    git("init", "-q", cwd=tmp_path)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "other", cwd=tmp_path)
    (tmp_path / "site-packages").mkdir()
    assert tracking.git_commit(tmp_path / "site-packages") == "unknown"
