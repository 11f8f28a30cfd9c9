"""The in-process transport, `inproc`: the server object lives in this process and is called directly.

Frames are handed over as objects (tensors stay on their device, nothing is copied or
serialised); each is counted as the bytes a socket would carry (`frames.wire_size`), so wire
metrics agree with the TCP transport's. A frame the server refuses is answered by an ERROR frame,
as `bench serve` answers it.
"""

from __future__ import annotations

from collections import deque

import torch

from bench.devices import resolve_device
from bench.server import Server
from bench.wire.frames import Frame, FrameError, Kind, wire_size
from bench.wire.transport import TRANSPORTS


class InProcess:
    def __init__(self, server: Server):
        self.server = server
        self.replies: deque[Frame] = deque()

    def send(self, frame: Frame) -> int:
        try:
            reply = self.server.handle(frame)
        except FrameError as exc:
            reply = Frame(Kind.ERROR, body=str(exc).encode())
        if reply is not None:
            self.replies.append(reply)
        return wire_size(frame)

    def receive(self) -> tuple[Frame, int]:
        reply = self.replies.popleft()
        return reply, wire_size(reply)

    def close(self) -> None:
        self.replies.clear()


@TRANSPORTS.register("inproc")
def in_process(cfg, in_channels: int, num_classes: int, server_net: torch.nn.Module) -> InProcess:
    """The run's server side in this process, training `server_net`."""
    return InProcess(Server(cfg, server_net, resolve_device(cfg.device)))
