"""The encrypted, authenticated wire: TLS with self-signed certificates made here, the token proven
by challenge-response (never sent), and every way a connection can be refused: one line, exit 2,
nothing written. The server runs in a thread of this process (bench.serve.serve)."""

import datetime
import hashlib
import hmac
import ipaddress
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench import names
from bench.engine import train
from bench.errors import UsageError
from bench.serve import serve
from bench.wire import frames, tcp, tls
from bench.wire.frames import Frame, Kind
from tests.bench_tests.test_wire import TOKEN, config, strip
from tests.conftest import SMALL, cli

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def self_signed(folder, name, not_before=NOW - DAY, not_after=NOW + DAY):
    """(certificate, key) files of a self-signed certificate for localhost and 127.0.0.1, which is
    its own CA (what the openssl command of docs/wire.md makes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    return {"good": self_signed(folder, "good"), "other": self_signed(folder, "other"),
            "expired": self_signed(folder, "expired", NOW - 10 * DAY, NOW - DAY)}


class Server:
    """`bench serve` in a thread: its port, its exit code, its log lines."""

    def __init__(self, context=None, token=TOKEN):
        self.code, self.client = None, None  # client: the context that stop() connects with
        ready = threading.Event()

        def announce(line):
            self.port = int(line.rsplit(":", 1)[1])
            ready.set()

        def run():
            self.code = serve("127.0.0.1", 0, token, announce=announce, tls=context)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(30)

    def stop(self) -> int:
        """Ends a server still listening with a run it accepts at once (HELLO ... BYE); its exit code."""
        if self.thread.is_alive():
            transport = tcp.connect("127.0.0.1", self.port, TOKEN, config(), 3, 10, tls=self.client)
            transport.close()
        self.thread.join(60)
        return self.code


@pytest.fixture
def tls_server(certs):
    server = Server(tls.server_context(*certs["good"]))
    server.client = tls.client_context(certs["good"][0])
    yield server
    server.stop()


def test_metrics_and_byte_counts_are_identical_in_tls_and_in_clear(tls_server):
    """TLS overhead is not counted: the ledger counts frames, so every byte metric matches too."""
    plain = train(config(), progress=False)
    transport = tcp.connect("127.0.0.1", tls_server.port, TOKEN, config(transport="tcp"), 3, 10,
                            tls=tls_server.client)
    assert transport.conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    over_tls = train(config(transport="tcp"), progress=False, transport=transport)
    transport.close()
    assert strip(over_tls) == strip(plain)
    assert over_tls.epochs[0][names.comm("wire_up")] > over_tls.epochs[0][names.comm("up")] > 0
    tls_server.thread.join(60)
    assert tls_server.code == 0


def test_the_token_never_crosses_and_a_proof_binds_its_nonce_and_hello():
    hello = tcp.hello(config(), 3, 10)
    assert TOKEN.encode() not in hello.body and b"token" not in hello.body
    nonce = bytes(range(tcp.NONCE_BYTES))
    expected = hmac.new(TOKEN.encode(), nonce + hello.body, hashlib.sha256).digest()
    assert tcp.proof(TOKEN, nonce, hello.body) == expected
    assert tcp.proof(TOKEN, bytes(tcp.NONCE_BYTES), hello.body) != expected
    assert tcp.proof(TOKEN, nonce, tcp.hello(config(epochs=9), 3, 10).body) != expected


def test_a_replayed_proof_is_refused_and_a_wrong_token_too():
    server = Server()
    try:
        with pytest.raises(UsageError, match="refused the run: wrong token"):
            tcp.connect("127.0.0.1", server.port, "guess", config(), 3, 10)
        # A recorded AUTH answers the nonce it was made for, not the next connection's.
        conn = tcp.Connection(socket.create_connection(("127.0.0.1", server.port)))
        hello = tcp.hello(config(), 3, 10)
        conn.send(hello)
        first, _ = conn.receive()
        assert first.kind == Kind.CHALLENGE and len(first.body) == tcp.NONCE_BYTES
        conn.send(Frame(Kind.AUTH, body=tcp.proof(TOKEN, bytes(tcp.NONCE_BYTES), hello.body)))
        reply, _ = conn.receive()
        assert reply.kind == Kind.ERROR and reply.body == b"wrong token"
        conn.close()
    finally:
        assert server.stop() == 0


def run_against(port, tmp_path, *extra):
    return cli(["run", *SMALL, "--connect", f"127.0.0.1:{port}", *extra], tmp_path, env={tcp.TOKEN_ENV: TOKEN})


def client_lines(done) -> list[str]:
    """The command's stderr lines; the server's (`serve: ...`) share this process's stderr."""
    return [line for line in done.stderr.strip().splitlines() if not line.startswith("serve: ")]


@pytest.mark.parametrize("ca, message", [
    (None, "connect: the server at 127.0.0.1:{port} broke off the handshake"),
    ("other", "connect: the server at 127.0.0.1:{port} failed TLS verification: "),
])
def test_a_plain_client_or_a_wrong_ca_fails_in_one_line_and_writes_nothing(tls_server, certs, tmp_path, ca, message):
    done = run_against(tls_server.port, tmp_path, *(["--tls-ca", certs[ca][0]] if ca else []))
    assert done.returncode == 2
    (line,) = client_lines(done)
    assert line.startswith("error: " + message.format(port=tls_server.port)), line
    assert list(tmp_path.iterdir()) == []
    assert tls_server.thread.is_alive()  # the server goes on listening


def test_an_expired_certificate_fails_in_one_line_and_writes_nothing(certs, tmp_path):
    server = Server(tls.server_context(*certs["expired"]))
    server.client = ssl.create_default_context()
    server.client.check_hostname, server.client.verify_mode = False, ssl.CERT_NONE  # stop() must get through
    try:
        done = run_against(server.port, tmp_path, "--tls-ca", certs["expired"][0])
        assert done.returncode == 2
        (line,) = client_lines(done)
        assert "failed TLS verification: certificate has expired" in line, line
        assert list(tmp_path.iterdir()) == []
    finally:
        assert server.stop() == 0


def test_a_run_over_tls_from_the_command_line(tls_server, certs, tmp_path):
    done = run_against(tls_server.port, tmp_path, "--tls-ca", certs["good"][0], "--no-system-metrics")
    assert done.returncode == 0, done.stderr
    assert "final: test acc" in done.stdout
    tls_server.thread.join(60)
    assert tls_server.code == 0


@pytest.mark.parametrize("args, message", [
    (["serve", "--listen", "0.0.0.0:0"], "listen: 0.0.0.0 is not a loopback address, and activations would cross"),
    (["serve", "--tls-cert", "{good_cert}"], "tls-key: give --tls-cert and --tls-key together"),
    (["serve", "--tls-key", "{good_key}"], "tls-cert: give --tls-cert and --tls-key together"),
    (["serve", "--tls-cert", "missing.pem", "--tls-key", "{good_key}"], "tls-cert: no such file 'missing.pem'"),
    (["serve", "--tls-cert", "{good_cert}", "--tls-key", "{other_key}"], "tls-cert: cannot use"),
    (["run", *SMALL, "--connect", "10.255.255.1:7707"], "connect: 10.255.255.1 is not a loopback address"),
    (["run", *SMALL, "--connect", "127.0.0.1:1", "--tls-ca", "missing.pem"], "tls-ca: no such file 'missing.pem'"),
    (["run", *SMALL, "--connect", "127.0.0.1:1", "--tls-ca", "{good_key}"], "tls-ca: cannot read certificates"),
    (["run", *SMALL, "--tls-ca", "{good_cert}"], "tls-ca: applies to --connect only"),
])
def test_bad_tls_input_is_one_line_exit_2_and_writes_nothing(certs, tmp_path, args, message):
    files = {"good_cert": certs["good"][0], "good_key": certs["good"][1], "other_key": certs["other"][1]}
    work = tmp_path / "work"
    work.mkdir()
    done = cli([a.format(**files) for a in args], work, env={tcp.TOKEN_ENV: TOKEN})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: " + message), line
    assert list(work.iterdir()) == []


def test_insecure_allows_a_clear_wire_elsewhere_with_a_warning():
    warnings = []
    tls.check_clear("listen", "0.0.0.0", True, warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith("warning: the wire to 0.0.0.0 is not encrypted")
    tls.check_clear("listen", "127.0.0.1", False, warnings.append)
    tls.check_clear("connect", "localhost", False, warnings.append)
    assert len(warnings) == 1 and tls.is_loopback("::1") and not tls.is_loopback("10.0.0.1")


def test_a_frame_of_the_old_protocol_is_refused():
    assert frames.VERSION == 2
