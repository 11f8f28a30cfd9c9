"""Meta bytes (scales, indices, bitmaps) counted apart in a real run, and when the engine clears a
stateful codec's error-feedback residual."""

import math

from bench import names, subsets
from bench.registry import Entry
from quantizers import QUANTIZERS
from quantizers.scaled import FP8E4M3
from quantizers.feedback import ErrorFeedback
from tests.bench_tests.test_engine import ACT_ELEMENTS, BATCH, BATCHES, TRAIN, config

BITMAP = ACT_ELEMENTS // 8  # one bit per element of a 16 x 16 x 16 sample
KEPT = round(0.1 * ACT_ELEMENTS)  # topk's default k = 0.1: 410 of 4096


def test_scale_bytes_are_meta_bytes_and_stay_in_up_and_down():
    result = train_quietly(config(quant_up="fp8_e4m3", quant_down="fp8_e5m2"))
    # FULL: one 4-byte scale per batch each way; FORWARD: up only; CACHED: nothing crosses.
    assert [e[names.comm("meta")] for e in result.epochs] == [2 * BATCHES * 4, BATCHES * 4, 0]
    assert result.final[names.FINAL_META_BYTES] == 3 * BATCHES * 4
    assert result.epochs[0][names.comm("up")] == TRAIN * ACT_ELEMENTS + BATCHES * 4
    fp32 = config(epochs=1, train_subset=100, test_subset=100)
    assert train_quietly(fp32).final[names.FINAL_META_BYTES] == 0  # fp32 carries no metadata


def test_topk_bitmap_and_scale_bytes_are_meta():
    result = train_quietly(config(quant_up="topk", epochs=1))
    meta = TRAIN * BITMAP + BATCHES * 4
    assert result.epochs[0][names.comm("meta")] == meta
    assert result.epochs[0][names.comm("up")] == TRAIN * KEPT + meta


def test_meta_bytes_per_client():
    cfg = config(quant_up="fp8_e4m3", quant_down="fp8_e4m3", clients=2, epochs=1)
    shards = subsets.iid_shards(cfg.load_data().train_y, 2, cfg.seed)
    epoch = train_quietly(cfg).epochs[0]
    expected = [2 * 4 * math.ceil(len(s) / BATCH) for s in shards]
    assert [epoch[f"comm/meta_bytes/client_{k}"] for k in range(2)] == expected
    assert epoch[names.comm("meta")] == sum(expected)


class Recording(ErrorFeedback):
    """Error-feedback FP8 that writes what happens to each instance: E per message, R per reset."""

    events: list[list[str]] = []

    def __init__(self):
        super().__init__(FP8E4M3())
        self.log = []
        Recording.events.append(self.log)

    def encode(self, x):
        self.log.append("E")
        return super().encode(x)

    def reset(self):
        self.log.append("R")
        super().reset()


def test_residuals_are_cleared_when_an_epoch_sends_and_before_each_test_batch(monkeypatch):
    monkeypatch.setitem(QUANTIZERS._entries, "recording", Entry("recording", Recording, "test"))
    monkeypatch.setattr(Recording, "events", [])
    cfg = config(quant_up="recording", quant_down="recording")
    checks = len(Recording.events)  # RunConfig's checks of the arguments
    train_quietly(cfg)  # FULL, FORWARD, CACHED
    # The engine's instances, as made: the server side's (per client a decoder of activations and
    # an encoder of gradients, then the evaluation decoder), then the client end's up, down, evaluation.
    server_up, down, server_eval, up, client_down, evaluation = ("".join(log) for log in Recording.events[checks:])
    assert server_up == server_eval == client_down == ""  # decoders keep no state: nothing to clear
    assert up == "R" + "E" * BATCHES + "R" + "E" * BATCHES  # CACHED sends nothing and keeps it
    assert down == "R" + "E" * BATCHES + "R"  # FORWARD starts fresh too, though no gradient goes down
    assert evaluation == "RE" * 3  # one test batch of 200 per epoch


def train_quietly(cfg):
    from bench.engine import train

    return train(cfg, progress=False)
