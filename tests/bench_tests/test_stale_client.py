"""Per-client gating where one client goes stale: it misses an average, then catches up.

Two clients, 100 samples each in batches of 50. Client 0 runs FULL, FULL, FULL; client 1 runs FULL,
CACHED, FORWARD. After epoch 1 only client 0 updated, so the average (version 2) is client 0's
network; client 1 still holds version 1 and must fetch version 2 before its FORWARD epoch.
"""

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from bench import engine
from bench.config import RunConfig
from bench.engine import ListSink, train
from policies import Mode

F, B, C = Mode.FULL, Mode.FORWARD, Mode.CACHED
SCRIPTS = ((F, F, F), (F, C, B))
# smallcnn at width 0.25, cut 2: conv 3->8 (3x3, no bias) = 216 weights; batch norm weight, bias,
# running mean and var = 4 x 8: 248 fp32 values cross per transfer.
STATE_BYTES = (8 * 3 * 3 * 3 + 4 * 8) * 4
CONFIG = RunConfig(model="smallcnn", width=0.25, cut=2, dataset="synthetic", train_subset=200, test_subset=20,
                   epochs=3, batch_size=50, clients=2, gating="per-client")


@dataclass(frozen=True)
class Scripted:
    """Runs a fixed mode per epoch."""

    modes: tuple
    search_space: ClassVar[dict] = {}

    def decide(self, obs):
        return self.modes[obs.epoch]


class ClientSnapshots(ListSink):
    def __init__(self):
        super().__init__()
        self.clients, self.states = [], []

    def log_epoch(self, epoch, metrics):
        super().log_epoch(epoch, metrics)
        self.states.append([{k: v.clone() for k, v in c.net.state_dict().items()} for c in self.clients])


@pytest.fixture
def sink(monkeypatch):
    """Client k gets SCRIPTS[k]; the sink sees the engine's clients (through _make_client)."""
    sink = ClientSnapshots()
    make_client = engine._make_client

    def spy(*args):
        client = make_client(*args)
        sink.clients.append(client)
        return client

    scripts = iter(SCRIPTS)
    monkeypatch.setattr(RunConfig, "make_policy", lambda self: Scripted(next(scripts)))
    monkeypatch.setattr(engine, "_make_client", spy)
    return sink


def test_a_stale_client_fetches_the_latest_average_before_it_computes_again(sink):
    """Catches: a client that missed an average and never fetches the latest one before it computes."""
    result = train(CONFIG, sink, progress=False)
    assert result.modes == [[F, F], [F, C], [F, B]]
    sync = [[e[f"comm/sync_bytes/client_{k}"] for k in range(2)] for e in result.epochs]
    # Updated clients upload and download (2 transfers); client 1 sits epoch 1 out, then fetches once.
    assert sync == [[2 * STATE_BYTES, 2 * STATE_BYTES], [2 * STATE_BYTES, 0], [2 * STATE_BYTES, STATE_BYTES]]
    after = sink.states
    assert all(torch.equal(after[1][1][k], after[0][1][k]) for k in after[0][1])  # CACHED: untouched
    exchanged = [k for k in after[0][0] if "num_batches" not in k]
    # After the fetch (and a frozen FORWARD epoch) client 1 holds version 2: client 0 after epoch 1.
    assert all(torch.equal(after[2][1][k], after[1][0][k]) for k in exchanged)
    assert not all(torch.equal(after[2][1][k], after[1][1][k]) for k in exchanged)
    assert [int(s[1]["0.1.num_batches_tracked"]) for s in after] == [2, 2, 2]  # its own counter


def test_with_several_clients_the_test_accuracy_is_the_averaged_networks(monkeypatch):
    """Catches: evaluation through one client's own network instead of the average. Client 0 sits
    epoch 1 out (CACHED) while client 1 trains, so the average is client 1's network and client 0
    still holds the average of epoch 0: the two differ, and only the average may be evaluated."""
    cfg = dataclasses.replace(CONFIG, epochs=2)
    scripts = iter(((F, C), (F, F)))
    monkeypatch.setattr(RunConfig, "make_policy", lambda self: Scripted(next(scripts)))
    clients, evaluated = [], []
    make_client, evaluate = engine._make_client, engine.evaluate
    monkeypatch.setattr(engine, "_make_client", lambda *args: clients.append(make_client(*args)) or clients[-1])

    def spy(net, *args, **kwargs):
        evaluated.append(({k: v.clone() for k, v in net.state_dict().items()},
                          [{k: v.clone() for k, v in c.net.state_dict().items()} for c in clients]))
        return evaluate(net, *args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", spy)
    result = train(cfg, progress=False)
    assert result.modes == [[F, F], [C, F]]
    (_, _), (seen, own) = evaluated
    exchanged = [k for k in seen if "num_batches" not in k]
    assert all(torch.equal(seen[k], own[1][k]) for k in exchanged)  # the average of the one client that trained
    assert not all(torch.equal(seen[k], own[0][k]) for k in exchanged), "evaluated client 0's own network"
    assert all(torch.equal(seen[k], result.client.state_dict()[k]) for k in exchanged)
