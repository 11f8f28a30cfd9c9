"""The contract of a transport, and the TRANSPORTS registry.

A transport carries Frames between the client ends and the server side, in order; the client end
counts the bytes it reports (link.py). A run opens one by name (RunConfig.transport) through the
opener registered under that name, `opener(cfg, in_channels, num_classes, server_net)`, which
starts the run's server side (bench.server.Server) wherever that side runs. A frame the server
refuses is answered by an ERROR frame with the reason, whatever carries it.

Built-ins: inproc (inproc.py, the server in this process) and tcp (tcp.py, a local `bench serve`
process); plugins register more under the entry-point group `splitbench.transports`. The
conformance kit, bench/wire/testing.py, checks every registered transport against inproc.
"""

from __future__ import annotations

from typing import Protocol

import torch

from bench.registry import Registry
from bench.wire.frames import Frame


class Transport(Protocol):
    """Carries frames between the client ends and the server, in order."""

    def send(self, frame: Frame) -> int:
        """Deliver `frame`; the bytes it took on the wire."""

    def receive(self) -> tuple[Frame, int]:
        """The server's next reply and the bytes it took on the wire."""

    def close(self) -> None:
        """Hang up, and stop a server side this transport started; closing twice does nothing."""


class Opener(Protocol):
    def __call__(self, cfg, in_channels: int, num_classes: int, server_net: torch.nn.Module) -> Transport:
        """A transport to a fresh server side of run `cfg` (a RunConfig), for data of `in_channels`
        channels and `num_classes` classes. `server_net` is the server part the run built
        (bench.split.split_networks): a server side in this process trains it, one elsewhere
        builds its own from the config (the run fetches its weights at the end)."""


TRANSPORTS: Registry[Opener] = Registry("transport", "splitbench.transports",
                                        built_ins=("bench.wire.inproc", "bench.wire.tcp"))
