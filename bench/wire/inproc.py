"""The in-process transport: the server object lives in this process and is called directly.

Frames are handed over as objects (tensors stay on their device, nothing is copied or
serialised); each is counted as the bytes a socket would carry (`frames.wire_size`), so wire
metrics agree with the TCP transport's.
"""

from __future__ import annotations

from collections import deque

from bench.wire.frames import Frame, wire_size


class InProcess:
    def __init__(self, server):
        self.server = server
        self.replies: deque[Frame] = deque()

    def send(self, frame: Frame) -> int:
        reply = self.server.handle(frame)
        if reply is not None:
            self.replies.append(reply)
        return wire_size(frame)

    def receive(self) -> tuple[Frame, int]:
        reply = self.replies.popleft()
        return reply, wire_size(reply)

    def close(self) -> None:
        self.replies.clear()
