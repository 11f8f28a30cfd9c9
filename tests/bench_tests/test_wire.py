"""The wire: the frame format on real sockets, tcp against inproc, faults, and the link model."""

import math
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

import pytest
import torch
from bench import models, names, spec, stores
from bench.config import RunConfig
from bench.engine import train
from bench.errors import UsageError
from bench.wire import exchanged_state, frames, tcp
from bench.wire.frames import ENTRY_SIZE, HEADER, HEADER_SIZE, MAGIC, VERSION, Frame, Kind
from quantizers import Payload
from tests.conftest import ROOT, SMALL, cli

TOKEN = "s3cret"
CLIENTS, TRAIN, BATCH = 2, 200, 50
BATCHES = CLIENTS * math.ceil(TRAIN // CLIENTS / BATCH)  # 4 frames per epoch, 2 per client
ACT_ELEMENTS = 16 * 16 * 16  # smallcnn width 0.5, cut 2, per sample


def config(**overrides):
    base = dict(model="smallcnn", width=0.5, cut=2, dataset="synthetic", train_subset=TRAIN, test_subset=100,
                epochs=3, batch_size=BATCH, policy="periodic", policy_args={"period": 3}, clients=CLIENTS,
                quant_up="fp8_e4m3", quant_down="fp8_e5m2", device="cpu")
    return RunConfig(**(base | overrides))


def test_a_frame_crosses_a_socket_intact_in_its_documented_size():
    q = torch.randn(3, 4, 5).to(torch.float8_e4m3fn)
    payload = Payload({"q": q, "scale": torch.tensor(0.5)}, meta=("scale",))
    frame = Frame(Kind.FULL, client=1, index=7, value=0.05, payload=payload, labels=torch.tensor([1, 2, 9], dtype=torch.uint8),
                  shape=(3, 4, 5), dtype=torch.float32, codec="fp8_e4m3")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    with a, b:
        sent = tcp.Connection(a).send(frame)
        got, received = tcp.Connection(b).receive()
    assert HEADER_SIZE == 87 and ENTRY_SIZE == 62
    assert sent == received == frames.wire_size(frame) == HEADER_SIZE + 3 * ENTRY_SIZE + 60 + 4 + 3
    assert (got.kind, got.client, got.index, got.value, got.shape, got.dtype, got.codec) == (
        Kind.FULL, 1, 7, 0.05, (3, 4, 5), torch.float32, "fp8_e4m3")
    assert got.payload.meta == ("scale",) and got.payload.tensors["q"].dtype == torch.float8_e4m3fn
    assert torch.equal(got.payload.tensors["q"].view(torch.uint8), q.view(torch.uint8))
    assert got.payload.tensors["scale"].item() == 0.5 and got.labels.tolist() == [1, 2, 9]


@pytest.mark.slow  # a server process
def test_tcp_gives_the_same_metrics_as_inproc_and_wire_bytes_are_payload_plus_headers():
    # The server process builds its codecs from the config it was sent: their arguments must cross too.
    stochastic = {"quant_down_args": {"rounding": "stochastic", "error_feedback": True}}
    inproc = train(config(**stochastic), progress=False)
    over_tcp = train(config(transport="tcp", **stochastic), progress=False)
    assert strip(inproc) != strip(train(config(), progress=False))  # the arguments change the run

    assert strip(over_tcp) == strip(inproc)
    trained = inproc.server.state_dict()
    assert all(torch.equal(t, trained[k]) for k, t in over_tcp.server.state_dict().items())  # fetched at the end
    client, _ = models.split(models.build("smallcnn", width=0.5), 2)
    states = len(exchanged_state(client))  # tensors in one SYNC or WEIGHTS frame
    full, forward, cached = over_tcp.epochs
    # FULL: a FULL frame per batch (q, scale, labels) answered by GRAD (q, scale); then each client
    # SYNCs its state, one AVERAGE, and each client FETCHes the average back as WEIGHTS.
    assert full[names.comm("wire_up")] == (full[names.comm("up")] + full[names.comm("label")] + full[names.comm("sync")] / 2
                                          + HEADER_SIZE * (BATCHES + CLIENTS + 1 + CLIENTS)
                                          + ENTRY_SIZE * (3 * BATCHES + CLIENTS * states))
    assert full[names.comm("wire_down")] == (full[names.comm("down")] + full[names.comm("sync")] / 2
                                            + HEADER_SIZE * (BATCHES + CLIENTS) + ENTRY_SIZE * (2 * BATCHES + CLIENTS * states))
    assert full[names.comm("up")] == TRAIN * ACT_ELEMENTS + BATCHES * 4
    # FORWARD: FORWARD frames answered by LOSS (a header); CACHED: CACHED requests answered by LOSS.
    assert forward[names.comm("wire_up")] == full[names.comm("up")] + TRAIN + BATCHES * (HEADER_SIZE + 3 * ENTRY_SIZE)
    assert forward[names.comm("wire_down")] == BATCHES * HEADER_SIZE
    assert cached[names.comm("wire_up")] == cached[names.comm("wire_down")] == BATCHES * HEADER_SIZE


@pytest.mark.slow  # a server process
@pytest.mark.parametrize("options", [
    {"cache_views": 2, "cache_mixup": 0.2, "cache_noise": 0.1, "val_fraction": 0.2},
    {"refresh_threshold": 0.05, "val_fraction": 0.2},
], ids=["views-mixup-noise-val", "refresh-val"])
def test_the_servers_cache_options_give_the_same_metrics_over_tcp(options):
    # views, regularisers, per-sample refresh and the validation slice live in the server process
    inproc = train(config(**options), progress=False)
    over_tcp = train(config(transport="tcp", **options), progress=False)
    assert strip(over_tcp) == strip(inproc)
    assert inproc.epochs[1][names.comm("val")] > 0 and names.VAL_LOSS in inproc.epochs[2]


def strip(result):
    return [{k: v for k, v in e.items() if not k.startswith("time/")} for e in result.epochs]


def test_the_link_model_charges_bytes_at_the_link_rates_and_a_round_trip_per_exchange():
    run = train(config(uplink_mbit=10, downlink_mbit=50, rtt_ms=20), progress=False)
    for e, exchanges in zip(run.epochs, (BATCHES + CLIENTS, 0, 0)):  # FULL steps and weight fetches wait
        expected = e[names.comm("wire_up")] * 8 / 10e6 + e[names.comm("wire_down")] * 8 / 50e6 + exchanges * 0.020
        assert e[names.COMM_S] == pytest.approx(expected, rel=1e-12)
        assert e[names.TOTAL_S] == pytest.approx(e[names.EPOCH_S] + e[names.COMM_S], rel=1e-12)
    assert run.final[names.FINAL_TOTAL_S] == pytest.approx(sum(e[names.TOTAL_S] for e in run.epochs))
    assert names.COMM_S not in train(config(epochs=1), progress=False).epochs[0]  # no model by default


def test_link_fields_are_checked_and_a_sweep_may_fix_them(tmp_path):
    with pytest.raises(UsageError, match="downlink_mbit: a link model needs both"):
        RunConfig(uplink_mbit=10)
    with pytest.raises(UsageError, match="transport: unknown name 'udp'"):
        RunConfig(transport="udp")
    toml = spec.resolve("smoke").read_text().replace("[sweep.fixed]", "[sweep.fixed]\nuplink_mbit = 10\n"
                                                     "downlink_mbit = 50\nrtt_ms = 20\ntransport = \"tcp\"", 1)
    (tmp_path / "link.toml").write_text(toml)
    cfg = spec.load(str(tmp_path / "link.toml")).cells[0].config()
    assert (cfg.uplink_mbit, cfg.downlink_mbit, cfg.rtt_ms, cfg.transport) == (10, 50, 20, "tcp")


def start_server(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), tcp.TOKEN_ENV: TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "bench", "serve", "--listen", "127.0.0.1:0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    port = int(proc.stdout.readline().split(":")[-1])
    return proc, port


def raw_exchange(port, data: bytes) -> bytes:
    """Send `data` on a fresh connection; everything the server says before it hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


def header(kind, length=0):
    return struct.pack(HEADER, length, MAGIC, VERSION, kind, 0, 0, 0.0, 0, 0, 0, 0, *[0] * 6, b"")


def authenticate(answer_token: str) -> dict:
    """One handshake over a socket pair: the server side (bench.serve.authenticated, with TOKEN) in
    a thread, the client answering its CHALLENGE with a proof made from `answer_token`. What the
    server side returned (the HELLO) or raised (its message)."""
    from bench.serve import authenticated
    from bench.wire.tcp import Connection

    with socket.create_server(("127.0.0.1", 0)) as listener:  # TCP: Connection sets TCP_NODELAY
        client = Connection(socket.create_connection(listener.getsockname()))
        server = Connection(listener.accept()[0])
    greeting, out = tcp.hello(config(), 3, 10), {}

    def serve():
        try:
            out["hello"] = authenticated(server, TOKEN)
        except UsageError as exc:
            out["error"] = str(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client.send(greeting)
        challenge, _ = client.receive()
        assert challenge.kind == Kind.CHALLENGE and len(challenge.body) == tcp.NONCE_BYTES
        client.send(Frame(Kind.AUTH, body=tcp.proof(answer_token, challenge.body, greeting.body)))
        thread.join(30)
    finally:
        server.close()
        client.close()
    return out | {"sent": greeting.body}


@pytest.mark.parametrize("given", ["guess", "", TOKEN[:-1], TOKEN + "x", TOKEN.upper()])
def test_a_hello_with_any_other_token_is_refused_and_only_the_right_one_is_served(given):
    """Catches: `bench serve` accepting any token. authenticated() is the check every connection
    passes (challenge-response: the token never crosses), welcome() then builds the run."""
    from bench.serve import welcome
    from bench.server import Server

    refused = authenticate(given)
    assert "hello" not in refused and refused["error"] == "wrong token"
    accepted = authenticate(TOKEN)
    assert accepted["hello"].body == accepted["sent"] and isinstance(welcome(accepted["hello"]), Server)


@pytest.mark.slow  # a server process
def test_server_rejects_bad_frames_and_wrong_tokens_then_still_serves_a_run():
    proc, port = start_server("--max-frame-mb", "1")
    try:
        too_large = raw_exchange(port, header(Kind.HELLO, length=2 << 20))
        malformed = raw_exchange(port, b"GET / HTTP/1.1\r\n" * 6)
        unknown = raw_exchange(port, header(99))
        with pytest.raises(UsageError, match="refused the run: wrong token"):
            tcp.connect("127.0.0.1", port, "guess", config(), 3, 10)
        lying = tcp.connect("127.0.0.1", port, TOKEN, config(), 3, 10)
        lying.send(Frame(Kind.FULL, payload=Payload({"q": torch.zeros(6, dtype=torch.float8_e4m3fn),
                                                     "scale": torch.tensor(1.0)}),
                         labels=torch.zeros(2, dtype=torch.uint8), shape=(5, 5), dtype=torch.float32, codec="fp8_e4m3"))
        assert b"FULL frame does not fit this run" in lying.receive()[0].body
        lying.conn.close()
        assert proc.poll() is None  # still listening
        tcp.connect("127.0.0.1", port, TOKEN, config(), 3, 10).close()  # HELLO, READY, BYE
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    for reply, reason in ((too_large, b"exceeds the limit of 1048576"), (malformed, b"not a frame of this protocol"),
                          (unknown, b"unknown frame kind 99")):
        assert frames.unpack_header(reply[:HEADER_SIZE], 1 << 20).kind == Kind.ERROR and reason in reply[HEADER_SIZE:]
    log = proc.stderr.read()
    assert log.count("serve: rejected") == 5 and "wrong token" in log and "Traceback" not in log


@pytest.mark.slow  # a server process
def test_a_server_that_loses_its_client_stops_cleanly():
    proc, port = start_server()
    try:
        transport = tcp.connect("127.0.0.1", port, TOKEN, config(), 3, 10)
        transport.conn.sock.close()  # gone without BYE
        assert proc.wait(timeout=60) == 1
    finally:
        proc.kill()
    log = proc.stderr.read()
    assert log.startswith("serve: lost the client at 127.0.0.1:") and log.count("\n") == 1


@pytest.mark.slow  # two interpreters and an MLflow store
def test_a_client_that_loses_its_server_fails_the_run(tmp_path):
    proc, port = start_server()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SPLITBENCH_DATA")}
    env.update(PYTHONPATH=str(ROOT), **{tcp.TOKEN_ENV: TOKEN})
    args = [a if a != "3" else "50" for a in SMALL]  # long enough to be cut off
    run = subprocess.Popen([sys.executable, "-m", "bench", "run", *args, "--connect", f"127.0.0.1:{port}"],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "FULL" not in run.stdout.readline():  # the first epoch's row: training is under way
            assert run.poll() is None, run.stderr.read()
        proc.send_signal(signal.SIGKILL)
        assert run.wait(timeout=120) == 1
    finally:
        proc.kill()
        run.kill()
    lines = run.stderr.read().strip().splitlines()
    assert lines[-1].startswith(f"error: run failed: lost the server at 127.0.0.1:{port}")
    client = stores.tracking_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (failed,) = client.search_runs([client.get_experiment_by_name("runs").experiment_id])
    assert failed.info.status == "FAILED" and "lost the server" in failed.data.tags["failure_reason"]


@pytest.mark.parametrize("args, token, message", [
    (["--connect", "127.0.0.1:1"], None, "SPLITBENCH_TOKEN: set it to a shared secret"),
    (["--connect", "nowhere"], TOKEN, "connect: expected HOST:PORT"),
    (["--connect", "127.0.0.1:1", "--transport", "inproc"], TOKEN, "connect: a server at HOST:PORT is reached over tcp"),
    (["--connect", "127.0.0.1:1"], TOKEN, "connect: no server at 127.0.0.1:1"),
    (["--connect", "127.0.0.1:1", "--seeds", "0,1"], TOKEN, "seeds: `bench serve` serves one run"),
])
def test_bad_connect_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, args, token, message):
    monkeypatch.delenv(tcp.TOKEN_ENV, raising=False)
    done = cli(["run", *SMALL, *args], tmp_path, env={tcp.TOKEN_ENV: token} if token else None)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert message in line
    assert list(tmp_path.iterdir()) == []
