"""Every registered transport, built-in or plugin, passes every check of the conformance kit
(bench/wire/testing.py); the kit itself catches broken transports."""

import pytest
import torch

from bench.registry import Entry
from bench.server import Server
from bench.wire.frames import wire_size
from bench.wire.inproc import InProcess
from bench.wire.testing import CHECKS, REFERENCE, check_refusal, check_same_run
from bench.wire.transport import TRANSPORTS

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
