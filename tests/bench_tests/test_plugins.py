"""Third-party components: entry points (a real installed package, and a faked one), --plugin files."""

import importlib.metadata
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import pytest

from bench.errors import UsageError
from bench.registry import Registry
from policies import POLICIES, Mode
from policies.builtin import Always
from tests.conftest import ROOT, SMALL, cli

EXAMPLE = ROOT / "examples" / "splitbench-every-other"

@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The example package installed for real (wheel built by pip) into a folder put on the path."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True)
    return target


def test_installed_plugin_is_listed_and_runs(installed_example, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_example))
    listing = cli(["list"], tmp_path)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert any(line.split()[:1] == ["every_other"] and "entry point" in line and "splitbench-every-other" in line
               for line in lines), listing.stdout
    assert any(line.split()[:1] == ["int8_sym"] for line in lines)
    out = cli(["run", *SMALL, "--policy", "every_other", "--quant-up", "int8_sym"], tmp_path)
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
    listing = cli(["list", "--plugin", str(plugin)], tmp_path)
    assert f"plugin {plugin}" in listing.stdout
    out = cli(["run", *SMALL, "--plugin", str(plugin), "--policy", "forward_after_first"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert [line.split()[1] for line in out.stdout.splitlines() if line.split()[:1] in (["0"], ["1"], ["2"])] == [
        "FULL", "FORWARD", "FORWARD"]


def test_missing_plugin_file_is_a_usage_error(tmp_path):
    out = cli(["list", "--plugin", "nope.py"], tmp_path)
    assert out.returncode == 2 and "plugin: no such file 'nope.py'" in out.stderr


@dataclass(frozen=True)
class Fake:
    search_space: ClassVar[dict] = {}

    def decide(self, obs):
        return Mode.FULL


class FakeDist:
    name = "fake-dist"


def fake_entry_points(monkeypatch, group, *specs):
    """Installed entry points of `group` faked as (name, value) pairs from distribution fake-dist."""
    eps = []
    for name, value in specs:
        ep = importlib.metadata.EntryPoint(name, value, group)
        object.__setattr__(ep, "dist", FakeDist())
        eps.append(ep)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [e for e in eps if e.group == group])


def test_entry_point_objects_register_under_their_name(monkeypatch):
    fake_entry_points(monkeypatch, "splitbench.test", ("fake_policy", f"{__name__}:Fake"))
    registry = Registry("policy", "splitbench.test")
    assert registry.get("fake_policy") is Fake
    assert registry.entries()[0].source == "entry point fake_policy (fake-dist)"


def test_a_broken_plugin_fails_only_the_run_that_asks_for_it(monkeypatch):
    fake_entry_points(monkeypatch, "splitbench.test", ("fake_policy", f"{__name__}:Fake"),
                      ("broken", "splitbench_no_such_module:Thing"))
    registry = Registry("policy", "splitbench.test")
    assert registry.names() == ["broken", "fake_policy"] and "broken" in registry  # listed, not imported
    assert registry.get("fake_policy") is Fake
    with pytest.raises(UsageError) as caught:
        registry.get("broken")
    assert str(caught.value) == ("policy 'broken': plugin entry point broken (fake-dist) failed to load "
                                 "(ModuleNotFoundError: No module named 'splitbench_no_such_module')")
    (unusable,) = [e for e in registry.entries() if e.obj is None]
    assert unusable.name == "broken" and unusable.source.startswith("unusable: policy 'broken': plugin")


def test_an_entry_point_with_a_built_in_name_is_an_error(monkeypatch):
    fake_entry_points(monkeypatch, "splitbench.test", ("same", f"{__name__}:Fake"))
    registry = Registry("policy", "splitbench.test")
    registry.register("same")(Always)
    with pytest.raises(UsageError) as caught:
        registry.get("same")
    assert str(caught.value) == "policy 'same' is registered twice: by built-in and by entry point same (fake-dist)"


def test_a_plugin_module_registering_a_taken_name_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "splitbench_test_taken.py").write_text(
        "from policies import POLICIES\n"
        "POLICIES.register('always')(object)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fake_entry_points(monkeypatch, POLICIES.group, ("taken", "splitbench_test_taken"))
    monkeypatch.setattr(POLICIES, "_installed", None)
    with pytest.raises(UsageError) as caught:
        POLICIES.get("taken")
    assert str(caught.value) == ("policy 'always' is registered twice: by built-in and by entry point taken "
                                 "(fake-dist)")
    assert POLICIES.get("always") is Always


def test_a_name_registered_twice_is_an_error():
    registry = Registry("policy", "splitbench.none")
    registry.register("same")(Fake)
    with pytest.raises(UsageError, match="registered twice"):
        registry.register("same")(Fake)


def test_the_registry_imports_neither_policies_nor_quantizers():
    code = "import sys, bench.registry; print(sorted(m for m in ('policies', 'quantizers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_conformance_kits_cover_installed_plugins_without_new_code(installed_example, tmp_path):
    kits = [str(ROOT / "tests" / "policies_tests" / "test_policy_conformance.py"),
            str(ROOT / "tests" / "quantizers_tests" / "test_codec_conformance.py")]
    out = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *kits],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT}:{installed_example}"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "test_policy_conforms[every_other] PASSED" in out.stdout
    assert "int8_sym" in out.stdout and " FAILED" not in out.stdout
