"""Every registered transport, built-in or plugin, passes every check of the conformance kit
(bench/wire/testing.py); the kit itself catches broken transports."""

import sys

import pytest
import torch

from bench.plugins import load_plugin
from bench.registry import Entry
from bench.server import Server
from bench.wire.frames import wire_size
from bench.wire.inproc import InProcess
from bench.wire.testing import CHECKS, REFERENCE, check_refusal, check_same_run, check_transport
from bench.wire.transport import TRANSPORTS
from tests.conftest import SMALL, cli

# Every transport but the in-process one starts a server side elsewhere: a process, at least.
NAMES = [pytest.param(name, marks=() if name == REFERENCE else pytest.mark.slow) for name in TRANSPORTS.names()]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", NAMES)
def test_transport_conforms(name, check):
    check(name)


class Padded(InProcess):
    """Counts a byte more than each frame takes."""

    def send(self, frame):
        return super().send(frame) + 1


class Raising(InProcess):
    """Lets the server's refusal escape instead of answering it."""

    def send(self, frame):
        reply = self.server.handle(frame)
        if reply is not None:
            self.replies.append(reply)
        return wire_size(frame)


def opener(transport):
    return lambda cfg, in_channels, num_classes, server_net: transport(Server(cfg, server_net, torch.device("cpu")))


@pytest.mark.parametrize("broken, check, message", [
    (Padded, check_same_run, "the run's metrics are not the in-process run's"),
    (Raising, check_refusal, r"a refused frame ended in FrameError"),
], ids=["bytes-miscounted", "refusal-raised"])
def test_kit_catches_a_broken_transport(monkeypatch, broken, check, message):
    monkeypatch.setitem(TRANSPORTS._entries, "broken", Entry("broken", opener(broken), "test"))
    with pytest.raises(AssertionError, match=f"transport 'broken': {message}"):
        check("broken")


def test_a_plugin_file_adds_a_transport_that_runs_without_new_code(tmp_path, monkeypatch):
    monkeypatch.setattr(TRANSPORTS, "_entries", dict(TRANSPORTS._entries))  # loaded again here, for the kit
    plugin = tmp_path / "loopback.py"
    plugin.write_text(
        "import torch\n"
        "from bench.server import Server\n"
        "from bench.wire.inproc import InProcess\n"
        "from bench.wire.transport import TRANSPORTS\n"
        "@TRANSPORTS.register('loopback')\n"
        "def loopback(cfg, in_channels, num_classes, server_net):\n"
        "    return InProcess(Server(cfg, server_net, torch.device('cpu')))\n"
    )
    listing = cli(["list", "--plugin", str(plugin)], tmp_path)
    assert any(line.split()[:1] == ["loopback"] and f"plugin {plugin}" in line for line in listing.stdout.splitlines())
    out = cli(["run", *SMALL, "--plugin", str(plugin), "--transport", "loopback"], tmp_path)
    assert out.returncode == 0, out.stderr
    try:
        load_plugin(str(plugin))  # cli() forgets what its command's plugins registered
        check_transport("loopback")
    finally:
        sys.modules.pop("splitbench_plugin_loopback", None)
