"""The gates' and the cache's engine options against hand-computed bytes: the validation slice,
mixup and noise (free), cache views (K x the FORWARD upload), per-sample refresh (its bitmap)."""

import math

import pytest
import torch

from bench import flops, models, names
from bench.layouts import Regularisers
from bench.layouts.per_batch import BatchCache, BatchRecord, Received
from bench.config import RunConfig
from bench.engine import train
from bench.errors import UsageError
from bench.wire import ServerEnd

TRAIN, BATCH = 200, 64  # batches of 64, 64, 64, 8
ACT = 16 * 16 * 16  # smallcnn width 0.5, cut 2: activation elements per sample
BITMAP = 8 + 8 + 8 + 1  # one bit per sample, ceil(B / 8) bytes per batch


def config(**overrides):
    base = dict(model="smallcnn", width=0.5, cut=2, dataset="synthetic", train_subset=TRAIN, test_subset=100,
                epochs=3, batch_size=BATCH, policy="periodic", policy_args={"period": 3})
    return RunConfig(**(base | overrides))


def comm(result):
    return [(e["mode"], e[names.comm("up")], e[names.comm("down")], e[names.comm("label")], e[names.comm("val")])
            for e in result.epochs]


def test_validation_slice_crosses_at_each_refresh_and_is_counted():
    # 50 of the 200 samples held out: training on 150 (batches 64, 64, 22), validation in one batch of 50.
    # A huge threshold never returns to FULL on the loss; max_cached = 1 forces it: F B C F.
    result = train(config(val_fraction=0.25, epochs=4, quant_up="fp8_e4m3", quant_down="fp8_e5m2",
                          policy="loss_threshold",
                          policy_args={"threshold": 1e9, "signal": "val", "max_cached": 1}), progress=False)
    up, down = 150 * ACT + 3 * 4, 150 * ACT + 3 * 4  # FP8: 1 byte per element + a 4-byte scale per message
    val = 50 * ACT + 4
    labels = 150 + 50
    assert comm(result) == [(0, up, down, labels, val), (1, up, 0, labels, val), (2, 0, 0, 0, 0),
                            (0, up, down, labels, val)]
    assert result.final[names.FINAL_VAL_BYTES] == 3 * val
    # Meta: the scales of up (3 messages), down (3) and the slice (1), counted in those kinds too.
    assert [e[names.comm("meta")] for e in result.epochs] == [7 * 4, 4 * 4, 0, 7 * 4]
    assert result.final[names.FINAL_COMM_BYTES] == 3 * up + 2 * down + 3 * val
    assert all(math.isfinite(e[names.VAL_LOSS]) for e in result.epochs)
    assert result.epochs[2][names.VAL_LOSS] != result.epochs[1][names.VAL_LOSS]  # the server moved; the slice did not


def test_mixup_and_noise_are_free_in_bytes_and_reproducible():
    plain = train(config(), progress=False)
    regular = train(config(cache_mixup=0.4, cache_noise=0.1), progress=False)
    again = train(config(cache_mixup=0.4, cache_noise=0.1), progress=False)
    assert comm(regular) == comm(plain)
    assert regular.final[names.FINAL_TOTAL_BYTES] == plain.final[names.FINAL_TOTAL_BYTES]
    losses = [[e[names.TRAIN_LOSS] for e in r.epochs] for r in (plain, regular, again)]
    assert losses[1][:2] == losses[0][:2]  # FULL and FORWARD epochs are untouched ...
    assert losses[1][2] != losses[0][2]  # ... the CACHED one trains on regularised activations
    assert losses[2] == losses[1]


def test_cache_views_send_k_views_in_forward_epochs():
    result = train(config(cache_views=3, epochs=4, policy_args={"period": 4}), progress=False)  # F B C C
    up = TRAIN * ACT * 4
    assert comm(result) == [(0, up, up, TRAIN, 0), (1, 3 * up, 0, 3 * TRAIN, 0), (2, 0, 0, 0, 0), (2, 0, 0, 0, 0)]
    client, _ = models.split(models.build("smallcnn", width=0.5), 2)
    assert result.epochs[1][names.CLIENT_FLOPS] == 3 * TRAIN * flops.measure(client, (3, 32, 32)).forward


def test_cached_epochs_cycle_through_the_views():
    end = ServerEnd(0, RunConfig())
    cache, record = BatchCache(end, Regularisers(0.0, 0.0, seed=0), torch.device("cpu")), BatchRecord()
    for view in range(3):
        acts = torch.full((2, 4), float(view))
        cache.store(Received(end.up.encode(acts), torch.tensor([view, view]), acts.shape, acts.dtype), view)
        record.store((view, 2), view)  # the client's record: batch number `view`, 2 samples
    g = torch.Generator().manual_seed(0)
    read = [int(cache.replay(cache.batches()[record.order(g)[0][0]]).labels[0]) for _ in range(4)]
    assert read == [1, 2, 0, 1]  # view 0 was trained on in the FORWARD epoch itself


@pytest.mark.parametrize("threshold, sent", [(0.0, TRAIN), (1e9, 0)])
def test_per_sample_refresh_sends_what_moved_and_the_map(threshold, sent):
    result = train(config(refresh_threshold=threshold), progress=False)
    full = TRAIN * ACT * 4
    forward = sent * ACT * 4 + BITMAP
    assert comm(result) == [(0, full, full, TRAIN, 0), (1, forward, 0, sent, 0), (2, 0, 0, 0, 0)]
    assert [e[names.comm("meta")] for e in result.epochs] == [0, BITMAP, 0]  # fp32 has no scales: the map
    assert all(math.isfinite(e[names.TRAIN_LOSS]) for e in result.epochs)


def test_cache_options_train_under_bf16_autocast():
    # Mixup's two-label loss, per-sample refresh and the validation loss, all under autocast.
    result = train(config(amp="bf16", cache_mixup=0.4, cache_noise=0.1, refresh_threshold=0.0, val_fraction=0.25,
                          policy="loss_threshold", policy_args={"threshold": 1e9, "signal": "val", "max_cached": 1},
                          epochs=4), progress=False)
    assert [e["mode"] for e in result.epochs] == [0, 1, 2, 0]
    assert all(math.isfinite(e[names.TRAIN_LOSS]) and math.isfinite(e[names.VAL_LOSS]) for e in result.epochs)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"cache_views": 0}, "cache_views"),
        ({"cache_mixup": -0.1}, "cache_mixup"),
        ({"cache_noise": -1}, "cache_noise"),
        ({"refresh_threshold": -0.5}, "refresh_threshold"),
        ({"refresh_threshold": 0.1, "cache_views": 2}, "refresh_threshold"),
        ({"policy": "loss_threshold", "policy_args": {"signal": "val"}}, "val_fraction"),
    ],
)
def test_bad_options_name_the_field(fields, field):
    with pytest.raises(UsageError, match=f"^{field}:"):
        config(**fields)


def test_a_validation_slice_of_no_sample_is_bad_input():
    with pytest.raises(UsageError, match="^val_fraction: 0.001 of shards of 200 samples leaves"):
        train(config(val_fraction=0.001), progress=False)


def test_a_cached_epoch_after_a_per_sample_refresh_trains_on_batches_of_the_batch_size(monkeypatch):
    from bench.server import Server

    sizes = []
    step = Server._step
    monkeypatch.setattr(Server, "_step", lambda self, batch, lr: sizes.append(len(batch.labels)) or step(self, batch, lr))
    result = train(config(refresh_threshold=0.05), progress=False)
    assert [e["mode"] for e in result.epochs] == [0, 1, 2]
    assert sizes == [64, 64, 64, 8] * 3  # FULL, FORWARD, CACHED: the shard of 200 in batches of 64


def test_a_cached_step_with_mixup_trains_on_the_mixed_labels_of_its_mixed_activations():
    """Catches: cache_mixup mixing the cached activations but training on the unmixed labels.

    The server holds one batch whose sample i is zero but for a 1 at element i, so the activations
    it trains on show lambda and each sample's partner; its loss must be the mixup loss,
    lambda x CE(labels) + (1 - lambda) x CE(partners' labels), on the logits it computed."""
    from bench.server import Server
    from bench.split import split_networks
    from bench.wire.frames import Frame, Kind

    cfg = config(cache_mixup=1.0)
    client, net = split_networks(cfg, 3, 10)
    shape = (8, *client(torch.zeros(1, 3, 32, 32)).shape[1:])
    server = Server(cfg, net, torch.device("cpu"))
    acts = torch.zeros(shape)
    acts.view(8, -1)[:, :8] = torch.eye(8)
    labels = torch.arange(8)
    payload = server.ends[0].up.encode(acts)
    server.held[0].cache.store(Received(payload, labels, torch.Size(shape), torch.float32))
    seen = []
    net.register_forward_hook(lambda module, args, out: seen.append((args[0].detach(), out.detach())))
    loss = float(server.handle(Frame(Kind.CACHED, client=0, index=0, value=0.0)).value)
    (mixed, logits), = seen
    weights = mixed.reshape(8, -1)[:, :8]  # row i: lambda at i, 1 - lambda at its partner
    partners = torch.tensor([i if weights[i, i] == 1 else int(weights[i].masked_fill(labels == i, -1).argmax())
                             for i in range(8)])
    moved = (partners != labels).nonzero().squeeze(1)
    lam = float(weights[moved[0], moved[0]])
    assert len(moved) >= 2 and 0.01 < lam < 0.99  # a real mix, in which the labels' share shows
    expected = (lam * torch.nn.functional.cross_entropy(logits, labels)
                + (1 - lam) * torch.nn.functional.cross_entropy(logits, partners))
    assert loss == pytest.approx(float(expected), rel=1e-5), "the mixed activations were not trained on mixed labels"
    assert loss != pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-3)
