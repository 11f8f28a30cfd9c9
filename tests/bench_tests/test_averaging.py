"""FedAvg on hand-set networks with unequal shards: every value is the shard-weighted mean.

Two updated clients hold 1 and 3 samples (weights 1/4 and 3/4) and a third client sits the
average out. Every parameter and running statistic is set by hand, so the expected mean is
computed here, not read back from the engine. The average is taken where the engine takes it:
by the server side, reached through each client's end of its link.
"""

import copy

import torch
from torch import nn

from bench.config import RunConfig
from bench.engine import Client, _average
from bench.server import Server
from bench.wire import ClientEnd, Ledger
from bench.wire.inproc import InProcess

# Per client: (every parameter, running_mean, running_var, num_batches_tracked, shard size).
HAND_SET = [(1.0, 2.0, 4.0, 5, 1), (3.0, 6.0, 8.0, 7, 3), (-9.0, -9.0, 9.0, 11, 2)]
# conv 1->2 (1x1, with bias) + batch norm over 2 channels: weight 2, bias 2, BN weight 2, bias 2,
# running mean 2, running var 2 = 12 floats; the integer batch counter is not exchanged.
STATE_BYTES = 12 * 4
CONFIG = RunConfig(dataset="synthetic", clients=3, device="cpu")


def hand_set_client(k: int, ledger: Ledger, server: InProcess) -> Client:
    value, mean, var, batches, shard = HAND_SET[k]
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
    bn = net[1]
    bn.running_mean.fill_(mean)
    bn.running_var.fill_(var)
    bn.num_batches_tracked.fill_(batches)
    link = ClientEnd(k, CONFIG, server, ledger, num_classes=10)
    return Client(k, torch.arange(shard), torch.arange(0), net, torch.optim.SGD(net.parameters(), lr=0.1), link,
                  torch.Generator())


def test_fedavg_is_the_shard_weighted_mean_of_parameters_and_running_statistics():
    """Catches: FedAvg that takes the first client's weights, an unweighted mean, or one that
    skips the batch-norm running statistics or averages the integer batch counters."""
    ledger = Ledger(3)
    server = InProcess(Server(CONFIG, nn.Linear(1, 1), torch.device("cpu")))  # its own network plays no part
    clients = [hand_set_client(k, ledger, server) for k in range(3)]
    average = copy.deepcopy(clients[0].net)
    average[1].num_batches_tracked.fill_(0)
    stale_before = copy.deepcopy(clients[2].net.state_dict())

    _average(clients[:2], average, version=4)

    expected = {"param": 0.25 * 1.0 + 0.75 * 3.0, "mean": 0.25 * 2.0 + 0.75 * 6.0, "var": 0.25 * 4.0 + 0.75 * 8.0}
    for net in (average, clients[0].net, clients[1].net):
        for p in net.parameters():
            assert torch.equal(p.detach(), torch.full_like(p, expected["param"]))
        assert torch.equal(net[1].running_mean, torch.full((2,), expected["mean"]))
        assert torch.equal(net[1].running_var, torch.full((2,), expected["var"]))
    # Integer counters stay each network's own.
    assert [int(c.net[1].num_batches_tracked) for c in clients] == [5, 7, 11]
    assert int(average[1].num_batches_tracked) == 0
    assert [c.version for c in clients] == [4, 4, 0]
    # The client that sat out is untouched and exchanged nothing.
    assert all(torch.equal(v, stale_before[k]) for k, v in clients[2].net.state_dict().items())
    counts = ledger.close_epoch()
    assert [c["sync"] for c in counts] == [2 * STATE_BYTES, 2 * STATE_BYTES, 0]
