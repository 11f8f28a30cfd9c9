"""Several clients: shards partition the data, averaging is counted exactly, gating per client."""

import pytest

from bench import models, names
from bench.config import RunConfig
from bench.engine import train
from bench.gating import Gate
from policies import POLICIES, Mode

F, B, C = Mode.FULL, Mode.FORWARD, Mode.CACHED
TRAIN = 600  # 60 per class: 3 shards of 200 (20 per class), nothing dropped


def config(**overrides):
    base = dict(model="smallcnn", width=0.5, cut=2, dataset="synthetic", train_subset=TRAIN, test_subset=200,
                epochs=2, batch_size=64, policy="always")
    return RunConfig(**(base | overrides))


def client_state_bytes():
    """fp32 parameters + batch-norm running mean/var of the client network, counted from the layers."""
    client, _ = models.split(models.build("smallcnn", width=0.5), 2)
    conv, bn = client[0][0], client[0][1]
    params = conv.weight.numel() + bn.weight.numel() + bn.bias.numel() + (conv.bias.numel() if conv.bias is not None else 0)
    return 4 * (params + bn.running_mean.numel() + bn.running_var.numel())


def test_one_full_epoch_sends_the_same_activations_for_1_and_3_clients():
    one = train(config(clients=1), progress=False)
    three = train(config(clients=3), progress=False)
    for key in (names.comm("up"), names.comm("down"), names.comm("label")):
        assert one.epochs[0][key] == three.epochs[0][key] == {names.comm("label"): TRAIN}.get(key, TRAIN * 16 * 16 * 16 * 4)
    assert three.epochs[0][names.CLIENT_FLOPS] == one.epochs[0][names.CLIENT_FLOPS]
    per_client = [three.epochs[0][f"comm/up_bytes/client_{k}"] for k in range(3)]
    assert per_client == [TRAIN // 3 * 16 * 16 * 16 * 4] * 3


def test_averaging_exchanges_each_clients_weights_both_ways():
    three = train(config(clients=3), progress=False)
    # Each FULL epoch ends with one averaging: 3 uploads + 3 downloads of the client state.
    assert [e[names.comm("sync")] for e in three.epochs] == [2 * 3 * client_state_bytes()] * 2
    assert [e["comm/sync_bytes/client_1"] for e in three.epochs] == [2 * client_state_bytes()] * 2
    one = train(config(clients=1), progress=False)
    assert [e[names.comm("sync")] for e in one.epochs] == [0, 0]  # nothing to average


def test_per_client_gating_follows_each_clients_own_loss():
    gate = Gate(lambda: POLICIES.get("loss_threshold")(threshold=0.1), clients=2, per_client=True)
    # client 0's loss drifts by 0.2 per epoch, client 1's by 0.01: only client 0 keeps returning to FULL.
    losses = [[2.0, 2.0], [1.8, 1.99], [1.6, 1.98], [1.4, 1.97], [1.2, 1.96]]
    seen = []
    for epoch, epoch_losses in enumerate(losses):
        modes = gate.decide(epoch)
        seen.append(modes)
        gate.record(modes, [(loss * 10, 10) for loss in epoch_losses])
    assert [m[0] for m in seen] == [F, B, F, B, F]
    assert [m[1] for m in seen] == [F, B, C, C, C]


def test_global_gating_decides_from_the_mean_loss_of_all_clients():
    gate = Gate(lambda: POLICIES.get("loss_threshold")(threshold=0.1), clients=2, per_client=False)
    seen = []
    for epoch, (a, b) in enumerate([(2.0, 2.0), (1.8, 1.99), (1.6, 1.98)]):
        modes = gate.decide(epoch)
        seen.append(modes)
        gate.record(modes, [(a * 10, 10), (b * 30, 30)])  # weighted by samples
    # mean after e1: (18 + 59.7) / 40 = 1.9425, |2.0 - 1.9425| < .1 -> C; e0 -> e1 is B.
    assert seen == [[F, F], [B, B], [C, C]]


def test_per_client_gating_averages_only_the_clients_that_updated():
    result = train(config(clients=3, epochs=4, gating="per-client", policy="loss_threshold",
                          policy_args={"threshold": 0.05}), progress=False)
    size = client_state_bytes()
    for e, (modes, record) in enumerate(zip(result.modes, result.epochs)):
        for k, mode in enumerate(modes):
            assert record[f"mode/client_{k}"] == mode
            # An updated client uploads and downloads once; a stale one fetches the average
            # before it next computes (at most once); a CACHED client exchanges nothing.
            sync = record[f"comm/sync_bytes/client_{k}"]
            if mode == F:
                assert sync in (2 * size, 3 * size)
            elif mode == C:
                assert sync == 0
            if mode != F:
                assert record[f"comm/down_bytes/client_{k}"] == 0
    assert result.modes[0] == [F, F, F]


@pytest.mark.parametrize("gating", ["global", "per-client"])
def test_multi_client_runs_are_deterministic(gating):
    def strip(result):
        return [{k: v for k, v in e.items() if not k.startswith("time/")} for e in result.epochs]

    cfg = config(clients=3, gating=gating, policy="periodic", policy_args={"period": 2}, epochs=3)
    assert strip(train(cfg, progress=False)) == strip(train(cfg, progress=False))
