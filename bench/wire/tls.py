"""TLS for the wire between machines (the standard library's ssl, TLS 1.2 or later), and the rule
for when a clear wire is allowed.

    bench serve --tls-cert server.pem --tls-key server.key      # server_context(cert, key)
    bench run --connect server-host:7707 --tls-ca ca.pem         # client_context(ca): verifies the
                                                                  # certificate and its host name

The token never crosses either way (bench/wire/tcp.py: challenge-response); TLS hides the data
(activations, labels, gradients, weights) and proves the server's identity. A clear wire is
allowed on the loopback interface only, unless the command says --insecure.

Byte counts are of frames (bench/wire/ledger.py): TLS's records, handshakes and tags are not
counted, so a run reports the same bytes with and without TLS.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

from bench.errors import UsageError

MINIMUM = ssl.TLSVersion.TLSv1_2
HANDSHAKE_TIMEOUT_S = 10


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """The server's context: its certificate chain and private key (PEM); UsageError naming the
    flag for a file that is missing or unusable."""
    for flag, path in (("tls-cert", cert), ("tls-key", key)):
        if not Path(path).is_file():
            raise UsageError(f"{flag}: no such file {path!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise UsageError(f"tls-cert: cannot use {cert!r} with the key {key!r} ({_reason(exc)})") from None
    return context


def client_context(ca: str) -> ssl.SSLContext:
    """The client's context: trusts the certificates in `ca` (PEM) only, and checks the server's host
    name against its certificate; UsageError naming the flag for a file that is missing or unusable."""
    if not Path(ca).is_file():
        raise UsageError(f"tls-ca: no such file {ca!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks host names by default
    context.minimum_version = MINIMUM
    try:
        context.load_verify_locations(cafile=ca)
    except (ssl.SSLError, ValueError) as exc:
        raise UsageError(f"tls-ca: cannot read certificates from {ca!r} ({_reason(exc)})") from None
    return context


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in found)


def check_clear(flag: str, host: str, insecure: bool, warn) -> None:
    """A clear wire to or from `host`: allowed on loopback; elsewhere a UsageError, unless
    `insecure`, then one warning line through `warn`."""
    if is_loopback(host):
        return
    if not insecure:
        remedy = "--tls-cert and --tls-key" if flag == "listen" else "--tls-ca"
        raise UsageError(f"{flag}: {host} is not a loopback address, and activations would cross it in clear; "
                         f"give {remedy} (docs/wire.md: an encrypted wire across machines), "
                         "or --insecure to accept a clear wire")
    warn(f"warning: the wire to {host} is not encrypted (--insecure): anyone on the path can read the "
         "activations, labels, gradients and weights")


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "verify_message", None) or str(exc) or type(exc).__name__
