"""The TCP transport, `tcp`: frames over a socket (in TLS across machines), and the client's side of
a session with `bench serve`. The registered opener starts a local `bench serve` process and
connects to it; `bench run --connect` reaches one on another machine (`connect`).

A session, after the TLS handshake where there is one (bench/wire/tls.py):
    client -> HELLO      JSON body {config, in_channels, num_classes}
    server -> CHALLENGE  a nonce: NONCE_BYTES random bytes, new for every connection
    client -> AUTH       proof(token, nonce, HELLO body) = HMAC-SHA256 keyed by the shared token
    server -> READY      when the proof matches (compared in constant time) and the config is a
                         valid run; else ERROR with the reason, then it closes
Then the client's frames follow in order, each answered as bench.server.Server says, until BYE.
The token itself never crosses, in clear or in TLS; a recorded proof is worthless on the next
connection (another nonce), and it binds the HELLO it answers, so a config cannot be swapped in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import sys

import torch

from bench.config import RunConfig
from bench.errors import RunFailed, UsageError
from bench.wire import frames
from bench.wire.frames import ENTRY_SIZE, HEADER_SIZE, Frame, FrameError, Kind
from bench.wire.transport import TRANSPORTS

MAX_FRAME_BYTES = 1 << 30  # a test batch of 1000 activations of a wide early cut still fits
TOKEN_ENV = "SPLITBENCH_TOKEN"  # the variable the cli reads the shared token from
CONNECT_TIMEOUT_S = 10
LOCAL_SERVER_EXIT_S = 30
REFUSE_DRAIN_S = 1.0
NONCE_BYTES = 32


class ConnectionClosed(Exception):
    """The peer closed the connection."""


class Connection:
    """A socket that carries frames; reads reject a frame larger than `limit` before reading it."""

    def __init__(self, sock: socket.socket, limit: int = MAX_FRAME_BYTES):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # request/reply: never wait for Nagle
        self.sock = sock
        self.limit = limit

    def send(self, frame: Frame) -> int:
        parts = frames.encode(frame)
        for part in parts:
            self.sock.sendall(part)
        return sum(len(p) if isinstance(p, bytes) else p.nbytes for p in parts)

    def receive(self) -> tuple[Frame, int]:
        """The next frame and its size; ConnectionClosed at a clean end, FrameError for a bad frame."""
        header = frames.unpack_header(self._read(HEADER_SIZE, at_boundary=True), self.limit)
        entries = frames.unpack_table(header, self._read(ENTRY_SIZE * header.ntensors))
        tensors = []
        for entry in entries:
            tensor = torch.empty(entry.shape, dtype=entry.dtype)
            self._read_into(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
            tensors.append(tensor)
        body = bytes(self._read(header.body))
        return frames.assemble(header, entries, tensors, body), HEADER_SIZE + header.length

    def refuse(self, reason: str) -> None:
        """Best effort: tell the peer why with an ERROR frame, and let it read that before the close
        (closing on unread input would reset the connection and lose the reason)."""
        try:
            self.send(Frame(Kind.ERROR, body=reason.encode()))
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(REFUSE_DRAIN_S)
            while self.sock.recv(1 << 16):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()

    def _read(self, n: int, at_boundary: bool = False) -> bytearray:
        buf = bytearray(n)
        self._read_into(memoryview(buf), at_boundary)
        return buf

    def _read_into(self, view: memoryview, at_boundary: bool = False) -> None:
        got = 0
        while got < len(view):
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise ConnectionClosed("connection closed" if at_boundary and got == 0 else "connection closed mid-frame")
            got += n


def hello(cfg: RunConfig, in_channels: int, num_classes: int) -> Frame:
    config = dataclasses.asdict(dataclasses.replace(cfg, data_dir=None))
    body = {"config": config, "in_channels": in_channels, "num_classes": num_classes}
    return Frame(Kind.HELLO, body=json.dumps(body).encode())


def proof(token: str, nonce: bytes, hello_body: bytes) -> bytes:
    """What AUTH carries: HMAC-SHA256 keyed by the token, of the server's nonce and the HELLO body."""
    return hmac.new(token.encode(), nonce + hello_body, hashlib.sha256).digest()


class TcpTransport:
    """The client side of a session. A lost server is RunFailed, naming the address."""

    def __init__(self, conn: Connection, address: str, process: subprocess.Popen | None = None):
        self.conn = conn
        self.address = address
        self.process = process  # the local server this transport started, if it did
        self.open = True
        self.refused = False  # the server answered ERROR: it ended the session and listens for another

    def send(self, frame: Frame) -> int:
        try:
            return self.conn.send(frame)
        except OSError as exc:
            raise self._lost(exc) from None

    def receive(self) -> tuple[Frame, int]:
        try:
            frame, size = self.conn.receive()
        except (OSError, ConnectionClosed) as exc:
            raise self._lost(exc) from None
        except FrameError as exc:
            raise RunFailed(f"the server at {self.address} sent a bad frame: {exc}") from None
        self.refused |= frame.kind == Kind.ERROR
        return frame, size

    def close(self) -> None:
        """Say BYE (if the server is still there) and hang up; wait for a local server to stop, or stop
        it when it refused a frame (it would wait for another session)."""
        if not self.open:
            return
        self.open = False
        try:
            self.conn.send(Frame(Kind.BYE))
        except OSError:
            pass
        self.conn.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=0 if self.refused else LOCAL_SERVER_EXIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _lost(self, exc: Exception) -> RunFailed:
        return RunFailed(f"lost the server at {self.address}: {exc or type(exc).__name__}")


def connect(host: str, port: int, token: str, cfg: RunConfig, in_channels: int, num_classes: int,
            process: subprocess.Popen | None = None, tls: ssl.SSLContext | None = None) -> TcpTransport:
    """A session with the server at host:port for the run `cfg`, in TLS with `tls` (a client
    context: bench.wire.tls.client_context); UsageError if there is no server there, its
    certificate fails verification, the handshake fails, or it refuses the token or the config."""
    address = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise UsageError(f"connect: no server at {address} ({exc.strerror or exc})") from None
    if tls is not None:
        try:
            sock = tls.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise UsageError(f"connect: the server at {address} failed TLS verification: "
                             f"{exc.verify_message or exc.reason}") from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise UsageError(f"connect: no TLS handshake with the server at {address} "
                             f"({getattr(exc, 'reason', None) or exc}); is it serving TLS?") from None
    sock.settimeout(None)  # the server may take a while to build the run before READY
    conn = Connection(sock)
    greeting = hello(cfg, in_channels, num_classes)
    try:
        conn.send(greeting)
        challenge, _ = conn.receive()
        if challenge.kind == Kind.CHALLENGE:
            conn.send(Frame(Kind.AUTH, body=proof(token, challenge.body, greeting.body)))
            reply, _ = conn.receive()
        else:
            reply = challenge
    except (OSError, ConnectionClosed, FrameError) as exc:
        conn.close()
        hint = "" if tls is not None else "; a server that speaks TLS needs --tls-ca"
        raise UsageError(f"connect: the server at {address} broke off the handshake ({exc}){hint}") from None
    if reply.kind != Kind.READY:
        conn.close()
        reason = reply.body.decode(errors="replace") if reply.kind == Kind.ERROR else f"answered {reply.kind.name}"
        raise UsageError(f"connect: the server at {address} refused the run: {reason}")
    return TcpTransport(conn, address, process)


@TRANSPORTS.register("tcp")
def local_server(cfg: RunConfig, in_channels: int, num_classes: int, server_net: torch.nn.Module) -> TcpTransport:
    """The run's server side in a `bench serve` process on this machine, which builds its own
    server part from the config (as `server_net` was built)."""
    return start_local(cfg, in_channels, num_classes)


def start_local(cfg: RunConfig, in_channels: int, num_classes: int) -> TcpTransport:
    """Start `python -m bench serve` on 127.0.0.1 (an ephemeral port it reports) and connect to it."""
    token = os.urandom(16).hex()
    process = subprocess.Popen([sys.executable, "-m", "bench", "serve", "--listen", "127.0.0.1:0"],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, TOKEN_ENV: token})
    line = process.stdout.readline().split()
    if len(line) != 3 or line[:2] != ["listening", "on"]:
        process.kill()
        raise RunFailed(f"the local server did not start (exit code {process.wait()})")
    host, port = line[2].rsplit(":", 1)
    try:
        return connect(host, int(port), token, cfg, in_channels, num_classes, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
