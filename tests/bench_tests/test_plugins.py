"""Third-party components: entry points (a real installed package, and a faked one), --plugin files."""

import importlib.metadata
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import pytest

from bench.registry import Registry
from policies import Mode
from tests.conftest import ROOT, SMALL, run_cli

EXAMPLE = ROOT / "examples" / "splitbench-every-other"

@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example package installed for real (wheel built by pip) into a folder put on the path."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True)
    return target


def test_installed_plugin_is_listed_and_runs(installed_example, tmp_path):
    env = {"PYTHONPATH": f"{ROOT}:{installed_example}"}
    listing = run_cli(["list"], tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert any(line.split()[:1] == ["every_other"] and "entry point" in line and "splitbench-every-other" in line
               for line in lines), listing.stdout
    assert any(line.split()[:1] == ["int8_sym"] for line in lines)
    out = run_cli(["run", *SMALL, "--policy", "every_other", "--quant-up", "int8_sym"], tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"])]
    assert [r[1] for r in rows] == ["FULL", "CACHED", "FULL"]


def test_plugin_file_adds_a_policy(tmp_path):
    plugin = tmp_path / "my_policy.py"
    plugin.write_text(
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "from policies import POLICIES, Mode\n"
        "@POLICIES.register('forward_after_first')\n"
        "@dataclass(frozen=True)\n"
        "class ForwardAfterFirst:\n"
        "    search_space: ClassVar[dict] = {}\n"
        "    def decide(self, obs):\n"
        "        return Mode.FULL if obs.epoch == 0 else Mode.FORWARD\n"
    )
    listing = run_cli(["list", "--plugin", str(plugin)], tmp_path)
    assert f"plugin {plugin}" in listing.stdout
    out = run_cli(["run", *SMALL, "--plugin", str(plugin), "--policy", "forward_after_first"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert [line.split()[1] for line in out.stdout.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"])] == [
        "FULL", "FORWARD", "FORWARD"]


def test_missing_plugin_file_is_a_usage_error(tmp_path):
    out = run_cli(["list", "--plugin", "nope.py"], tmp_path)
    assert out.returncode == 2 and "plugin: no such file 'nope.py'" in out.stderr


@dataclass(frozen=True)
class Fake:
    search_space: ClassVar[dict] = {}

    def decide(self, obs):
        return Mode.FULL


class FakeDist:
    name = "fake-dist"


def test_entry_point_objects_register_under_their_name(monkeypatch):
    ep = importlib.metadata.EntryPoint("fake_policy", f"{__name__}:Fake", "splitbench.test")
    object.__setattr__(ep, "dist", FakeDist())
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [ep] if group == "splitbench.test" else [])
    registry = Registry("policy", "splitbench.test")
    assert registry.get("fake_policy") is Fake
    assert registry.entries()[0].source == "entry point fake_policy (fake-dist)"


def test_a_name_registered_twice_is_an_error():
    registry = Registry("policy", "splitbench.none")
    registry.register("same")(Fake)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("same")(Fake)


def test_conformance_kits_cover_installed_plugins_without_new_code(installed_example, tmp_path):
    kits = [str(ROOT / "tests" / "policies_tests" / "test_policy_conformance.py"),
            str(ROOT / "tests" / "quantizers_tests" / "test_codec_conformance.py")]
    out = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *kits],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT}:{installed_example}"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "test_policy_conforms[every_other] PASSED" in out.stdout
    assert "int8_sym" in out.stdout and " FAILED" not in out.stdout
