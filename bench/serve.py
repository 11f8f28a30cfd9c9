"""`python -m bench serve`: the server side of one run in its own process, reached over TCP.

Listens, prints `listening on HOST:PORT` (the port the system chose when asked for 0), and accepts
connections one at a time. A connection that sends a frame that is too large, malformed, of an
unknown kind or out of turn, or a HELLO with the wrong token or an invalid config, is logged, sent
an ERROR frame when possible, and closed; the server keeps listening. The first session that
gets going is served to its end: BYE stops the server (exit 0), a client that disappears stops it
too (exit 1, one logged line).
"""

from __future__ import annotations

import hmac
import json
import socket
import sys
from typing import Callable

from bench.config import RunConfig
from bench.devices import resolve_device
from bench.errors import UsageError
from bench.server import Server, split_networks
from bench.wire.frames import Frame, FrameError, Kind
from bench.wire.tcp import MAX_FRAME_BYTES, Connection, ConnectionClosed


def log(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


def serve(host: str, port: int, token: str, *, limit: int = MAX_FRAME_BYTES,
          announce: Callable[[str], None] = print) -> int:
    """Serve one run; the exit code (0 after BYE, 1 after losing the client)."""
    with socket.create_server((host, port)) as listener:
        host, port = listener.getsockname()[:2]
        announce(f"listening on {host}:{port}")
        sys.stdout.flush()
        while True:
            sock, peer = listener.accept()
            with sock:
                outcome = session(Connection(sock, limit), f"{peer[0]}:{peer[1]}", token)
            if outcome is not None:
                return outcome


def session(conn: Connection, peer: str, token: str) -> int | None:
    """Answer one connection; an exit code once a run has been served, None to keep listening."""
    server = None
    try:
        server = welcome(conn.receive()[0], token)
        conn.send(Frame(Kind.READY))
        while True:
            frame, _ = conn.receive()
            if frame.kind == Kind.BYE:
                return 0
            try:
                reply = server.handle(frame)
            except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as exc:  # torch on a lying header
                raise FrameError(f"{frame.kind.name} frame does not fit this run: {str(exc).splitlines()[0]}") from None
            if reply is not None:
                conn.send(reply)
    except (ConnectionClosed, OSError) as exc:
        if server is None:
            log(f"{peer} left before its run started ({exc})")
            return None
        log(f"lost the client at {peer} ({exc}); stopping")
        return 1
    except (FrameError, UsageError) as exc:
        log(f"rejected {peer}: {exc}; connection closed")
        conn.refuse(str(exc))
        return None


def welcome(frame: Frame, token: str) -> Server:
    """The run's server side, from a HELLO with the right token and a valid config."""
    if frame.kind != Kind.HELLO:
        raise FrameError(f"expected HELLO first, got {frame.kind.name}")
    try:
        body = json.loads(frame.body)
        given, in_channels, num_classes = str(body["token"]), int(body["in_channels"]), int(body["num_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FrameError(f"HELLO body is not a valid run description ({type(exc).__name__}: {exc})") from None
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise UsageError("wrong token")
    try:
        cfg = RunConfig.from_dict(body["config"])
    except (KeyError, TypeError) as exc:
        raise FrameError(f"HELLO config is not a run's config ({type(exc).__name__}: {exc})") from None
    _, net = split_networks(cfg, in_channels, num_classes)
    return Server(cfg, net, resolve_device(cfg.device))
