"""What each mode changes, read from snapshots of the client and server networks after every epoch.

periodic(3) over 4 epochs runs FULL, FORWARD, CACHED, FULL. 100 training samples in batches of 50
are 2 batches per epoch, so batch norm's counter grows by exactly 2 in an epoch it is in train mode.
"""

import pytest
import torch

from bench import models
from bench.config import RunConfig
from bench.engine import ListSink, train
from policies import Mode

F, B, C = Mode.FULL, Mode.FORWARD, Mode.CACHED


def config(**overrides):
    base = dict(model="smallcnn", width=0.25, cut=2, dataset="synthetic", train_subset=100, test_subset=20,
                epochs=4, batch_size=50, policy="periodic", policy_args={"period": 3})
    return RunConfig(**(base | overrides))


class Snapshots(ListSink):
    """A list sink that also copies the client and server networks' state after every epoch."""

    def __init__(self):
        super().__init__()
        self.nets = {}
        self.client, self.server = [], []

    def log_epoch(self, epoch, metrics):
        super().log_epoch(epoch, metrics)
        self.client.append(state(self.nets["client"]))
        self.server.append(state(self.nets["server"]))


def state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def same(a, b, keys=None):
    return all(torch.equal(a[k], b[k]) for k in (keys or a))


def parameters(snapshot):
    """The trained entries (batch norm's running statistics also move in a forward pass)."""
    return [k for k in snapshot if "running" not in k and "num_batches" not in k]


@pytest.fixture
def snapshots(monkeypatch):
    """A Snapshots sink wired to the networks the engine builds (seen through models.split)."""
    sink = Snapshots()
    split = models.split

    def spy(model, cut):
        sink.nets["client"], sink.nets["server"] = split(model, cut)
        return sink.nets["client"], sink.nets["server"]

    monkeypatch.setattr(models, "split", spy)
    return sink


def run(sink, **overrides):
    result = train(config(**overrides), sink, progress=False)
    assert [m[0] for m in result.modes] == [F, B, C, F]
    return sink


def test_server_trains_in_every_mode_and_client_only_in_full(snapshots):
    """Catches: CACHED epochs that do not step the server; a client that changes in FORWARD or CACHED."""
    s = run(snapshots)
    for e in range(1, 4):
        assert not same(s.server[e], s.server[e - 1], parameters(s.server[e])), f"the server did not step in epoch {e}"
    assert not same(s.client[3], s.client[2], parameters(s.client[3]))  # FULL trains the client
    assert same(s.client[1], s.client[0])  # FORWARD: frozen, batch norm in eval mode
    assert same(s.client[2], s.client[1])  # CACHED: no client work at all
    assert [int(c["0.1.num_batches_tracked"]) for c in s.client] == [2, 2, 2, 4]


def test_frozen_bn_train_updates_running_statistics_in_forward_only(snapshots):
    """Catches: `frozen_bn` ignored (batch norm in FORWARD epochs always in one mode)."""
    s = run(snapshots, frozen_bn="train")
    assert same(s.client[1], s.client[0], parameters(s.client[0]))  # still frozen
    assert not torch.equal(s.client[1]["0.1.running_mean"], s.client[0]["0.1.running_mean"])
    assert [int(c["0.1.num_batches_tracked"]) for c in s.client] == [2, 4, 4, 6]
