"""Conformance kit for cache layouts: `check_layout(name)` runs the layout registered as `name`
through every check in CHECKS, each raising AssertionError naming the layout on failure.

Every check trains the same short run on synthetic data, with the config fields that choose the
layout (Layout.chosen_by): two clients of 100 samples in batches of 16 (7 batches each, the last
of 4), fp32 both ways, epochs FULL, FORWARD, CACHED, CACHED. The kit watches what the server trains
on (the labels of each step), so it checks any layout by what crosses and what is trained on, not
by how it is built:
    bytes         a FULL epoch sends every sample once each way; a FORWARD epoch sends nothing
                  down and 4 x activation elements of payload per label it sends up (meta apart);
                  a CACHED epoch moves no payload, and one header-sized reply per step
    modes         the epochs run in the policy's modes, and each trains on every training sample
                  exactly once (a CACHED epoch is one pass over what the server holds)
    replay order  the two CACHED epochs replay in different orders, and a rerun replays the same
    transports    over every registered transport the run is the in-process run, to the byte
                  (bench/wire/testing.py: same_run)
"""

from __future__ import annotations

import dataclasses
import functools
from unittest import mock

import torch

from bench import names
from bench.config import RunConfig
from bench.engine import ListSink, RunResult, train
from bench.layouts import LAYOUTS, Layout, layout_of
from bench.server import Server
from bench.split import split_networks
from bench.wire.frames import HEADER_SIZE
from bench.wire.testing import REFERENCE, same_run, strip
from bench.wire.transport import TRANSPORTS
from policies import Mode

TRAIN, BATCH, CLIENTS = 200, 16, 2
MODES = [Mode.FULL, Mode.FORWARD, Mode.CACHED, Mode.CACHED]
PAYLOAD_KINDS = ("up", "down", "label", "meta", "val", "sync")  # comm/<kind>_bytes


def config(name: str, **overrides) -> RunConfig:
    """The kit's run with layout `name`."""
    layout = LAYOUTS.get(name)
    base = dict(model="smallcnn", width=0.25, cut=2, dataset="synthetic", train_subset=TRAIN, test_subset=20,
                epochs=len(MODES), eval_every=len(MODES), batch_size=BATCH, clients=CLIENTS, policy="periodic",
                policy_args={"period": len(MODES)}, device="cpu")
    cfg = RunConfig(**(base | dict(layout.chosen_by) | overrides))
    assert layout_of(cfg) is layout, f"layout {name!r}: the fields it is chosen by, {layout.chosen_by}, choose another"
    return cfg


@dataclasses.dataclass(frozen=True)
class Trained:
    """A run, and per epoch the labels of each batch the server trained on, in order."""

    result: RunResult
    steps: list[list[list[int]]]


class _Epochs(ListSink):
    """A sink that marks where each epoch's server steps end."""

    def __init__(self, steps: list):
        super().__init__()
        self.steps, self.ends = steps, []

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        super().log_epoch(epoch, metrics)
        self.ends.append(len(self.steps))


def trained(cfg: RunConfig) -> Trained:
    """Run `cfg` in process, watching every server step."""
    steps: list[list[int]] = []
    step = Server._step

    def watched(server, batch, lr):
        steps.append(batch.labels.tolist())
        return step(server, batch, lr)

    sink = _Epochs(steps)
    with mock.patch.object(Server, "_step", watched):
        result = train(cfg, sink, progress=False)
    starts = [0, *sink.ends[:-1]]
    return Trained(result, [steps[a:b] for a, b in zip(starts, sink.ends)])


def _run(name: str) -> Trained:
    """The kit's run of layout `name`, once per layout registered under that name."""
    return _runs(LAYOUTS.get(name), config(name))


@functools.lru_cache(maxsize=None)
def _runs(layout: type[Layout], cfg: RunConfig) -> Trained:
    return trained(cfg)


def activation_elements(cfg: RunConfig) -> int:
    """Elements of one sample's activations at the cut."""
    ds = cfg.load_data()
    client, _ = split_networks(cfg, ds.in_channels, ds.num_classes)
    return client(torch.zeros(1, *ds.train_x.shape[1:])).numel()


def check_bytes(name: str) -> None:
    run, cfg = _run(name), config(name)
    act = activation_elements(cfg)
    full, forward, *cached = run.result.epochs
    case = f"layout {name!r}"
    assert (full[names.comm("up")], full[names.comm("down")], full[names.comm("label")]) == (
        TRAIN * act * 4, TRAIN * act * 4, TRAIN), f"{case}: a FULL epoch must send every sample once each way"
    assert forward[names.comm("down")] == 0 and forward[names.comm("sync")] == 0, f"{case}: a FORWARD epoch sent down"
    assert forward[names.comm("up")] - forward[names.comm("meta")] == forward[names.comm("label")] * act * 4, (
        f"{case}: a FORWARD epoch's payload is not 4 x {act} bytes per label it sent")
    for epoch, steps in zip(cached, run.steps[2:]):
        assert [epoch[names.comm(kind)] for kind in PAYLOAD_KINDS] == [0] * len(PAYLOAD_KINDS), (
            f"{case}: a CACHED epoch moved payload")
        assert epoch[names.comm("wire_down")] == len(steps) * HEADER_SIZE, f"{case}: a CACHED step's reply is a header"


def check_modes(name: str) -> None:
    run = _run(name)
    case = f"layout {name!r}"
    assert run.result.modes == [[mode] * CLIENTS for mode in MODES], f"{case}: modes {run.result.modes}"
    samples = sorted(config(name).load_data().train_y.tolist())
    for mode, steps in zip(MODES, run.steps):
        assert sorted(label for step in steps for label in step) == samples, (
            f"{case}: a {mode.name} epoch did not train on every training sample exactly once")


def check_replay_order(name: str) -> None:
    run = _run(name)
    case = f"layout {name!r}"
    assert run.steps[2] != run.steps[3], f"{case}: two CACHED epochs replayed in the same order"
    again = trained(config(name))
    assert again.steps == run.steps, f"{case}: a rerun of the same seed replayed in another order"
    assert strip(again.result) == strip(run.result), f"{case}: a rerun of the same seed logged other metrics"


def check_transports(name: str) -> None:
    for transport in TRANSPORTS.names():
        if transport != REFERENCE:
            same_run(config(name), transport)


CHECKS = (check_bytes, check_modes, check_replay_order, check_transports)


def check_layout(name: str) -> None:
    """Run every check in CHECKS on the layout registered as `name`."""
    for check in CHECKS:
        check(name)
