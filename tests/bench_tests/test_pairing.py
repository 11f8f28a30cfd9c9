"""The premise of paired comparisons, and the training recipe's options.

Seed k of every setting must start from the weights, shard, batches and augmentations of seed k of
the baseline (common random numbers): that is what lets reports/noise.py compare seed by seed.
"""

import math

import pytest
import torch

from bench import data, engine, names, subsets
from bench.config import RunConfig
from bench.errors import UsageError
from bench.split import split_networks

BASE = dict(model="smallcnn", width=0.25, cut=2, dataset="synthetic", train_subset=256, test_subset=100,
            epochs=3, batch_size=32, warmup_epochs=0, device="cpu")


BATCHES = data.batches  # the real one, whatever a test patched


class Recorded:
    """An Epoch that notes every training batch it yields (images and labels), in order."""

    def __init__(self, epoch, log):
        self.epoch, self.log = epoch, log

    def __len__(self):
        return len(self.epoch)

    def __iter__(self):
        for x, y in self.epoch:
            self.log.append((x.clone(), y.clone()))
            yield x, y


def _train_recording(cfg, monkeypatch):
    """Train `cfg`; returns (result, per epoch the training batches the client drew)."""
    drawn: list[list] = []

    def batches(ds, split, *args, **kwargs):
        epoch = BATCHES(ds, split, *args, **kwargs)
        if split != "train" or not kwargs.get("shuffle"):
            return epoch
        drawn.append([])
        return Recorded(epoch, drawn[-1])

    monkeypatch.setattr(engine.datasets, "batches", batches)
    return engine.train(cfg, progress=False), drawn


def test_two_settings_of_one_seed_share_weights_shards_batches_and_augmentations_until_their_modes_differ(
        monkeypatch):
    """The baseline (always) and periodic(3) with the same seed: identical initial weights and shards;
    epoch 0 (FULL in both) trains on identical batches, so its loss is identical to the bit (one
    process, one set of kernels); epoch 1 (FULL against FORWARD) still draws identical batches and
    augmentations; only epoch 2 (CACHED) draws differently."""
    baseline = RunConfig(**BASE, seed=3)
    gated = RunConfig(**BASE, seed=3, policy="periodic", policy_args=(("period", 3),))
    for a, b in zip(*(split_networks(c, 3, 10) for c in (baseline, gated))):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    ds = baseline.load_data()
    assert torch.equal(ds.train_y, gated.load_data().train_y)
    assert all(torch.equal(s, t) for s, t in zip(subsets.iid_shards(ds.train_y, 2, 3), subsets.iid_shards(ds.train_y, 2, 3)))

    run_a, drawn_a = _train_recording(baseline, monkeypatch)
    run_b, drawn_b = _train_recording(gated, monkeypatch)
    assert [m[0].name for m in run_b.modes] == ["FULL", "FORWARD", "CACHED"]
    assert len(drawn_a) == 3 and len(drawn_b) == 2  # a CACHED epoch draws no images
    for epoch in (0, 1):
        assert len(drawn_a[epoch]) == len(drawn_b[epoch]) == 8
        for (xa, ya), (xb, yb) in zip(drawn_a[epoch], drawn_b[epoch]):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert run_a.epochs[0][names.TRAIN_LOSS] == run_b.epochs[0][names.TRAIN_LOSS]


def test_another_seed_draws_other_weights_and_batches(monkeypatch):
    """The pairing is by seed: seed 4 differs from seed 3 in its weights and its first batch."""
    nets = [split_networks(RunConfig(**BASE, seed=s), 3, 10)[0] for s in (3, 4)]
    assert not torch.equal(*(next(iter(n.state_dict().values())) for n in nets))
    cfg = dict(BASE, epochs=1)
    _, drawn_3 = _train_recording(RunConfig(**cfg, seed=3), monkeypatch)
    _, drawn_4 = _train_recording(RunConfig(**cfg, seed=4), monkeypatch)
    assert not torch.equal(drawn_3[0][0][0], drawn_4[0][0][0])


def test_a_fixed_subset_seed_keeps_the_images_and_moves_only_the_training_draws():
    """subset_seed: every seed trains and tests on the same images; without it each seed draws its own."""
    cfg = dict(BASE, dataset="cifar10", train_subset=None, test_subset=None)
    keys = [RunConfig(**(BASE | {"seed": s, "subset_seed": 0})).data_key() for s in (1, 2)]
    assert keys[0] == keys[1]
    assert RunConfig(**(cfg | {"seed": 1})).data_key() != RunConfig(**(cfg | {"seed": 2})).data_key()
    a, b = (RunConfig(**(BASE | {"seed": s, "subset_seed": 0, "dataset": "synthetic"})).load_data() for s in (1, 2))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)


@pytest.mark.parametrize(("schedule", "expected"), [
    # warm-up over epoch 0 to lr 0.1, then (epochs 1..4) a decay that reaches 0 at the end of epoch 4
    ("linear", [0.0, 0.05, 0.1, 0.075, 0.05, 0.025, 0.0]),
    ("cosine", [0.0, 0.05, 0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05, 0.1 * (1 - math.cos(math.pi / 4)) / 2, 0.0]),
    ("step", [0.0, 0.05, 0.1, 0.1, 0.02, 0.02, 0.02]),
])
def test_learning_rate_schedules(schedule, expected):
    cfg = RunConfig(epochs=5, lr=0.1, warmup_epochs=1, lr_milestones=(3,), lr_gamma=0.2, lr_schedule=schedule)
    at = [engine.lr_at(cfg, e) for e in (0, 0.5, 1, 2, 3, 4, 5)]
    assert at == pytest.approx(expected, abs=1e-8)  # lr_at nudges the warm-up by 1e-9 so that epoch 1 is warm


def test_eval_every_tests_every_nth_epoch_and_the_last():
    run = engine.train(RunConfig(**(BASE | {"epochs": 5, "eval_every": 2})), progress=False)
    assert [names.TEST_ACC in e for e in run.epochs] == [False, True, False, True, True]
    assert run.final[names.FINAL_TEST_ACC] == run.epochs[-1][names.TEST_ACC]


def test_label_smoothing_changes_the_loss_and_no_byte():
    """Label smoothing raises the cross-entropy floor (a smoothed target cannot be met exactly) and
    leaves what crosses the cut unchanged."""
    cfg = BASE | {"epochs": 1}
    plain = engine.train(RunConfig(**cfg), progress=False)
    smooth = engine.train(RunConfig(**cfg, label_smoothing=0.3), progress=False)
    assert smooth.epochs[0][names.TRAIN_LOSS] != plain.epochs[0][names.TRAIN_LOSS]
    assert smooth.final[names.FINAL_TOTAL_BYTES] == plain.final[names.FINAL_TOTAL_BYTES]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("lr_schedule", "exp", "lr_schedule: unknown name 'exp'"),
    ("label_smoothing", 1.0, "label_smoothing: must be a number >= 0 and < 1, got 1.0"),
    ("eval_every", 0, "eval_every: must be an integer >= 1, got 0"),
    ("subset_seed", -1, "subset_seed: must be a number >= 0, got -1"),
])
def test_recipe_options_are_checked(field, value, message):
    with pytest.raises(UsageError, match=message):
        RunConfig(**{field: value})
