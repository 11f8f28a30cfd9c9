"""How a result was made: the tags every run carries (the source's commit, the versions, the device)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch

from bench import names

SOURCE = Path(__file__).resolve().parents[2]  # the folder holding bench/, policies/, quantizers/


def provenance(device: str, seed: int) -> dict[str, str]:
    """Tags that say how a result was made."""
    import mlflow

    import bench

    return {
        names.GIT_COMMIT: git_commit(),
        names.SEED: str(seed),
        names.DEVICE: device_name(device),
        names.VERSIONS: f"splitbench {bench.__version__}, torch {torch.__version__}, mlflow {mlflow.__version__}, "
        f"python {platform.python_version()}",
    }


def git_commit(source: Path = SOURCE) -> str:
    """The commit of the splitbench source that is running (`-dirty` with uncommitted changes),
    wherever the command was started; 'unknown' when `source` is not the top of a git checkout
    (an installed copy, even one inside another repository)."""

    def git(*args):
        return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=5)

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != source.resolve():
            return "unknown"
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
