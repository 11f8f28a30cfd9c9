"""The engine against exact, independently computed figures: bytes, modes, FLOPs, determinism."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from bench import data, flops, models, names
from bench.config import RunConfig
from bench.engine import evaluate, train
from bench.errors import RunFailed
from bench.registry import Entry
from bench.server import Server
from bench.wire import ClientEnd, Ledger
from bench.wire.inproc import InProcess
from quantizers import QUANTIZERS, Payload

TRAIN, BATCH = 500, 64
BATCHES = math.ceil(TRAIN / BATCH)  # 8, the last one short
# smallcnn at width 0.5, cut 2 (conv 16 channels + max-pool) on 32x32 inputs: 16 x 16 x 16 per sample.
ACT_ELEMENTS = 16 * 16 * 16


def config(**overrides):
    base = dict(model="smallcnn", width=0.5, cut=2, dataset="synthetic", train_subset=TRAIN, test_subset=200,
                epochs=3, batch_size=BATCH, policy="periodic", policy_args={"period": 3})
    return RunConfig(**(base | overrides))


@pytest.mark.parametrize(
    "up, down, up_elem, down_elem, scale_bytes",
    [("fp32", "fp32", 4, 4, 0), ("fp8_e4m3", "fp8_e5m2", 1, 1, 4), ("fp16", "bf16", 2, 2, 0)],
)
def test_bytes_of_full_forward_cached_epochs_are_exact(up, down, up_elem, down_elem, scale_bytes):
    result = train(config(quant_up=up, quant_down=down), progress=False)
    up_bytes = TRAIN * ACT_ELEMENTS * up_elem + BATCHES * scale_bytes
    down_bytes = TRAIN * ACT_ELEMENTS * down_elem + BATCHES * scale_bytes
    labels = TRAIN * 1  # uint8 labels for 10 classes
    got = [(e["mode"], e[names.comm("up")], e[names.comm("down")], e[names.comm("label")], e[names.comm("sync")])
           for e in result.epochs]
    assert got == [
        (0, up_bytes, down_bytes, labels, 0),  # FULL: up and down
        (1, up_bytes, 0, labels, 0),  # FORWARD: up only
        (2, 0, 0, 0, 0),  # CACHED: nothing crosses
    ]
    assert result.final[names.FINAL_COMM_BYTES] == 2 * up_bytes + down_bytes
    assert result.final[names.FINAL_TOTAL_BYTES] == 2 * up_bytes + down_bytes + 2 * labels


def test_client_flops_per_mode_are_sample_counts_times_measured_cost():
    result = train(config(), progress=False)
    client, _ = models.split(models.build("smallcnn", width=0.5), 2)
    cost = flops.measure(client, (3, 32, 32))
    assert [e[names.CLIENT_FLOPS] for e in result.epochs] == [TRAIN * cost.forward_backward, TRAIN * cost.forward, 0]
    assert cost.forward_backward > cost.forward > 0


def test_same_seed_gives_identical_metrics():
    def strip(rec):
        return {k: v for k, v in rec.items() if not k.startswith("time/")}

    a = train(config(policy="always", policy_args={}), progress=False)
    b = train(config(policy="always", policy_args={}), progress=False)
    assert [strip(e) for e in a.epochs] == [strip(e) for e in b.epochs]
    c = train(config(policy="always", policy_args={}, seed=1), progress=False)
    assert [strip(e) for e in a.epochs] != [strip(e) for e in c.epochs]


def test_a_diverging_run_fails_with_its_reason():
    with pytest.raises(RunFailed, match=r"train/loss is (nan|inf|-inf) at epoch \d"):
        train(config(lr=1e12, warmup_epochs=0, policy="always", policy_args={}), progress=False)


class Negate:
    """A lossy codec on purpose: the server receives the activations negated."""

    stateful = False

    def encode(self, x):
        return Payload({"x": -x})

    def decode(self, p, like):
        return p.tensors["x"]


def test_evaluation_goes_through_the_up_codec(monkeypatch):
    """Catches: evaluation that skips the up codec (it would score the fp32 activations)."""
    monkeypatch.setitem(QUANTIZERS._entries, "negate", Entry("negate", Negate, "test"))
    ds = data.load("synthetic", train_subset=10, test_subset=20)
    ds = dataclasses.replace(ds, test_y=torch.full_like(ds.test_y, 3))
    server = nn.Linear(3 * 32 * 32, 10, bias=False)
    with torch.no_grad():
        server.weight.zero_()
        server.weight[3] = -1.0  # logit 3 is minus the sum of the activations, logit 5 the sum
        server.weight[5] = 1.0
    client = SumOfSquares()
    assert evaluate(client, link("fp32", server), ds, "cpu") == 0.0  # predicts 5 everywhere
    assert evaluate(client, link("negate", server), ds, "cpu") == 1.0  # negated: predicts 3, the label


def link(codec: str, server: nn.Module) -> ClientEnd:
    """A client's end of a link to an in-process server side that holds `server`, both ends with `codec` up."""
    cfg = RunConfig(dataset="synthetic", quant_up=codec, device="cpu")
    return ClientEnd(0, cfg, InProcess(Server(cfg, server, torch.device("cpu"))), Ledger(1), num_classes=10)


class SumOfSquares(nn.Module):
    """Flattened squared pixels: every activation >= 0, so their sum is positive."""

    def forward(self, x):
        return (x**2).flatten(1) + 1e-3
