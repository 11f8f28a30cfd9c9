"""`python -m bench serve`: the server side of one run in its own process, reached over TCP.

Listens, prints `listening on HOST:PORT` (the port the system chose when asked for 0), and accepts
connections one at a time, each in TLS when given a server context (bench/wire/tls.py). A
connection whose TLS handshake fails, that sends a frame that is too large, malformed, of an
unknown kind or out of turn, that cannot prove the token (bench/wire/tcp.py: challenge-response)
or whose HELLO holds an invalid config, is logged, sent an ERROR frame when possible, and closed;
the server keeps listening. The first session that
gets going is served to its end: BYE stops the server (exit 0), a client that disappears stops it
too (exit 1, one logged line).
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import ssl
import sys
from typing import Callable

from bench.config import RunConfig
from bench.devices import resolve_device
from bench.errors import UsageError
from bench.server import Server
from bench.split import split_networks
from bench.wire.frames import Frame, FrameError, Kind
from bench.wire.tcp import MAX_FRAME_BYTES, NONCE_BYTES, Connection, ConnectionClosed, proof
from bench.wire.tls import HANDSHAKE_TIMEOUT_S


def log(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


def serve(host: str, port: int, token: str, *, limit: int = MAX_FRAME_BYTES,
          announce: Callable[[str], None] = print, tls: ssl.SSLContext | None = None) -> int:
    """Serve one run; the exit code (0 after BYE, 1 after losing the client)."""
    with socket.create_server((host, port)) as listener:
        host, port = listener.getsockname()[:2]
        announce(f"listening on {host}:{port}")
        sys.stdout.flush()
        while True:
            sock, peer = listener.accept()
            name = f"{peer[0]}:{peer[1]}"
            with sock:
                wrapped = _handshake(tls, sock, name) if tls is not None else sock
                if wrapped is None:
                    continue
                with wrapped:
                    outcome = session(Connection(wrapped, limit), name, token)
            if outcome is not None:
                return outcome


def _handshake(tls: ssl.SSLContext, sock: socket.socket, peer: str) -> ssl.SSLSocket | None:
    """The connection in TLS, or None (logged) when the peer does not complete a handshake in time."""
    sock.settimeout(HANDSHAKE_TIMEOUT_S)
    try:
        wrapped = tls.wrap_socket(sock, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        log(f"rejected {peer}: no TLS handshake ({getattr(exc, 'reason', None) or exc}); connection closed")
        return None
    wrapped.settimeout(None)
    return wrapped


def session(conn: Connection, peer: str, token: str) -> int | None:
    """Answer one connection; an exit code once a run has been served, None to keep listening."""
    server = None
    try:
        server = welcome(authenticated(conn, token))
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


def authenticated(conn: Connection, token: str) -> Frame:
    """The client's HELLO, once it has proven that it holds the token: a fresh nonce goes out as
    CHALLENGE, and AUTH must carry proof(token, nonce, HELLO body), compared in constant time."""
    frame, _ = conn.receive()
    if frame.kind != Kind.HELLO:
        raise FrameError(f"expected HELLO first, got {frame.kind.name}")
    nonce = os.urandom(NONCE_BYTES)
    conn.send(Frame(Kind.CHALLENGE, body=nonce))
    answer, _ = conn.receive()
    if answer.kind != Kind.AUTH:
        raise FrameError(f"expected AUTH after CHALLENGE, got {answer.kind.name}")
    if not hmac.compare_digest(answer.body, proof(token, nonce, frame.body)):
        raise UsageError("wrong token")
    return frame


def welcome(frame: Frame) -> Server:
    """The run's server side, from an authenticated HELLO with a valid config."""
    try:
        body = json.loads(frame.body)
        in_channels, num_classes = int(body["in_channels"]), int(body["num_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FrameError(f"HELLO body is not a valid run description ({type(exc).__name__}: {exc})") from None
    try:
        cfg = RunConfig.from_dict(body["config"])
    except (KeyError, TypeError) as exc:
        raise FrameError(f"HELLO config is not a run's config ({type(exc).__name__}: {exc})") from None
    _, net = split_networks(cfg, in_channels, num_classes)
    return Server(cfg, net, resolve_device(cfg.device))
