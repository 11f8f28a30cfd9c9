"""train(cfg, sink) -> RunResult: split learning with 1..N clients, gated per epoch.

Per epoch each client runs the mode its policy chose (PAPER.md):
    FULL     client forward -> up codec -> server step -> down codec -> client backward/step;
             the server caches what it received (payload and labels).
    FORWARD  frozen client forward (no grad) -> up codec -> server step; cache refreshed (in
             cache_views views, or only the samples that moved with per-sample refresh).
    CACHED   no client work, no payload bytes (only a header-sized request per batch): the server
             trains on its cache (in the run's layout, bench/layouts: the cached batches in an
             order the client draws, with the cache's regularisers).
Batches are served round-robin across clients (client 1 batch 1, client 2 batch 1, ...) and the
one server network steps after every client batch. After an epoch in which clients updated, the
updated clients' networks are averaged through the server (FedAvg, weighted by shard size) and
sent back; a client that missed averages fetches the latest one before it next computes. One
client is N = 1 of the same loop (nothing to average).
With val_fraction > 0 each client holds a validation slice of its shard out of training; after a
FULL or FORWARD epoch its activations cross through the up codec (counted as val bytes), and after
every epoch the server's loss on the slices it holds feeds the gate.

The engine never touches the server network or a codec's decoding for training: each client talks
to the server side (bench/server.py, which holds the caches) through its end of its Link
(bench/wire), over the run's transport. What crosses in each mode is the layout's client half's to
decide (the views, the per-sample refresh selection and its map); the validation slice is the
engine's.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
from tqdm import tqdm

from bench import data as datasets
from bench import flops, names, subsets
from bench.acceleration import Acceleration
from bench.config import RunConfig
from bench.devices import resolve_device
from bench.errors import RunFailed
from bench.gating import Gate
from bench.losses import StepLosses
from bench.layouts import ClientHalf, layout_of
from bench.split import client_stream, sgd, split_networks
from bench.wire import KINDS, ClientEnd, Ledger, exchanged_state
from bench.wire.transport import TRANSPORTS, Transport
from policies import Mode


class Sink(Protocol):
    """Where a run's records go: MLflow in real runs, a list in tests."""

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def log_final(self, metrics: dict[str, float]) -> None: ...


@dataclass
class ListSink:
    epochs: list[dict[str, float]] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs.append(metrics)

    def log_final(self, metrics: dict[str, float]) -> None:
        self.final = metrics


@dataclass
class RunResult:
    config: RunConfig
    epochs: list[dict[str, float]]
    final: dict[str, float]
    modes: list[list[Mode]]  # per epoch, per client
    client: torch.nn.Module  # the (averaged) client network, as evaluated
    server: torch.nn.Module


@dataclass
class Client:
    """One edge device: its shards, its copy of the client network, its end of its link, and its
    half of the run's cache layout (what crosses, and its record of what the server holds)."""

    index: int
    shard: torch.Tensor
    val: torch.Tensor  # the validation slice, held out of `shard`
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    link: ClientEnd
    generator: torch.Generator
    layout: ClientHalf | None = None  # None only for a client that never trains
    version: int = 0  # the number of the average this client holds


def lr_at(cfg: RunConfig, epoch: float) -> float:
    """The learning rate at `epoch` (fractional: epoch + step / steps): a linear warm-up over
    `warmup_epochs`, then PAPER.md's x lr_gamma at each milestone (lr_schedule step), or a linear
    or cosine decay that reaches 0 at the end of the last epoch.

    A decay to 0 is what lets a short run converge: at a constant rate the final weights still
    wander with the last batches, and seeds spread by several points (hlb-CIFAR10 and airbench
    anneal to 0 for that reason)."""
    warm = min(1.0, (epoch + 1e-9) / cfg.warmup_epochs) if cfg.warmup_epochs else 1.0
    if cfg.lr_schedule == "step":
        return cfg.lr * warm * cfg.lr_gamma ** sum(1 for m in cfg.lr_milestones if epoch >= m)
    start = min(cfg.warmup_epochs, cfg.epochs - 1)
    left = max(0.0, 1 - (epoch - start) / (cfg.epochs - start)) if epoch > start else 1.0
    decay = left if cfg.lr_schedule == "linear" else 0.5 * (1 - math.cos(math.pi * left))
    return cfg.lr * warm * decay


def train(cfg: RunConfig, sink: Sink | None = None, *, dataset=None, progress: bool = True,
          check_every: int | None = None, transport: Transport | None = None) -> RunResult:
    """Run `cfg` to the end, logging each epoch to `sink`; raises RunFailed on a non-finite loss.

    The data set and its augmentation live on the run's device, and no step reads anything back to
    the host: losses stay on the device and are checked at the end of each epoch, and also every
    `check_every` steps if given (a diverging run then stops sooner). Either way RunFailed names
    the epoch, step and client of the first non-finite loss.

    `transport` reaches a server that was already given this run's config (`bench run --connect`);
    without one the run opens its own, as `cfg.transport` says.
    """
    sink = sink or ListSink()
    device = resolve_device(cfg.device)
    accel = Acceleration.of(cfg, device)
    ds = (dataset or cfg.load_data()).to(device)
    client_net, server_net = split_networks(cfg, ds.in_channels, ds.num_classes)
    client_net = accel.place(client_net)
    with contextlib.ExitStack() as stack:
        if transport is None:
            transport = TRANSPORTS.get(cfg.transport)(cfg, ds.in_channels, ds.num_classes, server_net)
        stack.callback(transport.close)
        return _train(cfg, sink, ds, client_net, server_net, transport, accel, progress, check_every)


def _train(cfg, sink, ds, client_net, server_net, transport, accel, progress, check_every) -> RunResult:
    cost = flops.measure(client_net, (ds.in_channels, ds.image_size, ds.image_size))
    ledger = Ledger(cfg.clients)
    shards = cfg.shards(ds.train_y)
    subsets.check_hold_out([len(s) for s in shards], cfg.val_fraction)
    clients = [_make_client(cfg, k, shard, client_net, transport, ledger, ds.num_classes)
               for k, shard in enumerate(shards)]
    val_samples = sum(len(c.val) for c in clients)
    average = clients[0].net if cfg.clients == 1 else copy.deepcopy(client_net)
    accel.compile_all(*(c.net for c in clients), average)
    gate = Gate(cfg.make_policy, cfg.clients, per_client=cfg.gating == "per-client")
    version, records, modes_seen = 0, [], []

    for epoch in range(cfg.epochs):
        started = time.perf_counter()
        modes = gate.decide(epoch)
        streams = []
        for client, mode in zip(clients, modes):
            if mode != Mode.CACHED and client.version < version:
                _fetch_average(client, average)
                client.version = version
            streams.append((client, mode, _stream(cfg, ds, client, mode, epoch, accel.device)))
        losses, client_flops = _serve(cfg, accel, cost, streams, epoch, progress, check_every)
        updated = [c for c, m in zip(clients, modes) if m == Mode.FULL]
        if cfg.clients > 1 and updated:
            version += 1
            _average(updated, average, version)
        val_losses = None
        if val_samples:
            val_losses = _validate(cfg, accel, ds, clients, modes, cost, client_flops)
        train_s = time.perf_counter() - started
        tested = (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1
        acc = evaluate(average, clients[0].link, ds, accel.device, accel) if tested else None
        record = _epoch_metrics(cfg, modes, losses, ledger.close_epoch(), client_flops, acc, train_s, lr_at(cfg, epoch))
        if val_losses:
            record[names.VAL_LOSS] = sum(t for t, _ in val_losses) / val_samples
        gate.record(modes, losses, val_losses)
        records.append(record)
        modes_seen.append(modes)
        sink.log_epoch(epoch, record)

    server_net.load_state_dict(clients[0].link.server_state())
    final = _final_metrics(cfg, records, ledger)
    sink.log_final(final)
    return RunResult(cfg, records, final, modes_seen, average, server_net)


def _serve(cfg, accel, cost, streams, epoch: int, progress: bool, check_every: int | None):
    """One epoch's batches, served round-robin across the clients' streams: (per client, its loss
    total and samples; per client, its FLOPs)."""
    steps = sum(len(batches) for _, _, batches in streams)
    step_losses = StepLosses(cfg.clients, epoch)
    client_flops = [0.0 for _ in streams]
    bar = tqdm(total=steps, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="batch")
    tagged = [zip(itertools.repeat(c), itertools.repeat(m), batches) for c, m, batches in streams]
    schedule = itertools.chain.from_iterable(itertools.zip_longest(*tagged))
    for step, item in enumerate(x for x in schedule if x is not None):
        client, mode, batch = item
        lr = lr_at(cfg, epoch + step / steps)
        for group in client.opt.param_groups:
            group["lr"] = lr
        step_losses.add(step, client.index, *_step(accel, client, mode, batch, lr))
        if mode != Mode.CACHED:
            per_sample = cost.forward_backward if mode == Mode.FULL else cost.forward
            client_flops[client.index] += len(batch.y) * per_sample
        if check_every and (step + 1) % check_every == 0:
            step_losses.check()
        bar.update()
    bar.close()
    step_losses.check()
    return step_losses.totals(), client_flops


def _make_client(cfg, k, shard, client_net, transport, ledger, num_classes) -> Client:
    net = client_net if cfg.clients == 1 else copy.deepcopy(client_net)
    link = ClientEnd(k, cfg, transport, ledger, num_classes)
    stream = client_stream(cfg, k)
    generator = torch.Generator().manual_seed(stream)
    shard, val = subsets.hold_out(shard, cfg.val_fraction, stream)
    return Client(k, shard, val, net, sgd(cfg, net), link, generator, layout_of(cfg).client(cfg, len(shard)))


def _stream(cfg, ds, client: Client, mode: Mode, epoch: int, device):
    """The client's batches for this epoch in serving order (all random draws are taken here); a
    CACHED epoch's batches are what the client knows of the server's cache, in an order it draws."""
    if mode == Mode.CACHED:
        if not client.layout:
            raise RunFailed(f"epoch {epoch}: client {client.index} is CACHED but nothing was cached yet")
        return client.layout.order(client.generator)
    augment = cfg.augment and not (mode == Mode.FORWARD and cfg.cache_augment == "off")
    client.link.reset()  # no error-feedback residual outlives the cache or the network it was made for
    client.net.train(mode == Mode.FULL or cfg.frozen_bn == "train")
    return client.layout.epoch(ds, client.shard, mode, augment, client.generator, device)


def _step(accel: Acceleration, client: Client, mode: Mode, batch, lr: float) -> tuple[torch.Tensor, int]:
    """One client batch through the cut in `mode`; returns (mean loss as a 0-dim tensor, samples the
    server trained on)."""
    if mode == Mode.CACHED:
        return client.layout.cached(client.link, batch, lr)
    if mode == Mode.FORWARD:
        with torch.no_grad():
            acts = _client_forward(accel, client.net, batch.x)
        return client.layout.forward(client.link, batch, acts, lr)
    acts = _client_forward(accel, client.net, batch.x)
    grad, loss = client.layout.full(client.link, batch, acts, lr)
    client.opt.zero_grad(set_to_none=True)
    acts.backward(grad)
    client.opt.step()
    return loss, len(batch.y)


def _client_forward(accel: Acceleration, net, x) -> torch.Tensor:
    """The client's activations as they reach the codec: float32 whatever autocast computed them in,
    so that a codec's bytes mean the same with and without --amp."""
    with accel.autocast():
        return net(accel.input(x)).float()


def _fetch_average(client: Client, average: torch.nn.Module) -> None:
    state = client.link.fetch_weights()
    client.net.load_state_dict(state, strict=False)
    average.load_state_dict(state, strict=False)


def _average(updated: list[Client], average: torch.nn.Module, version: int) -> None:
    """FedAvg of the updated clients through the server (weighted by shard size); the average goes
    back to each of them."""
    for c in updated:
        c.link.upload_weights(exchanged_state(c.net), len(c.shard))
    updated[0].link.average()
    for c in updated:
        _fetch_average(c, average)
        c.version = version


def _validate(cfg, accel, ds, clients, modes, cost, client_flops) -> list[tuple[float, int]]:
    """After the epoch: refreshing clients send their slice; per client, the server's loss on what it holds."""
    for client, mode in zip(clients, modes):
        if mode != Mode.CACHED:
            _send_validation(cfg, accel, ds, client, accel.device)
            client_flops[client.index] += len(client.val) * cost.forward
    return [(c.link.validation_loss(), len(c.val)) for c in clients]  # every slice crossed in epoch 0, all FULL


@torch.no_grad()
def _send_validation(cfg, accel, ds, client: Client, device) -> None:
    """The client's validation slice crosses (val bytes, labels) and replaces what the server held of it."""
    client.net.eval()
    batches = datasets.batches(ds, "train", client.val, cfg.batch_size, device=device)
    for index, (x, y) in enumerate(batches):
        client.link.send_validation(_client_forward(accel, client.net, x), y, index)


@torch.no_grad()
def evaluate(client_net, link: ClientEnd, ds, device, accel: Acceleration | None = None) -> float:
    """Test accuracy through the deployed path: activations cross the up codec (bytes not counted).

    Batches are made where ds's tensors are, then moved to `device`; the count is read back once.
    """
    accel = accel or Acceleration(torch.device(device))
    client_net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    everything = torch.arange(len(ds.test_y))
    for x, y in datasets.batches(ds, "test", everything, 1000, device=device):
        correct += link.evaluate(_client_forward(accel, client_net, x), y)
    return correct.item() / len(ds.test_y)


# The ledger counts labels under "labels"; their metric is comm/label_bytes.
_LEDGER_KIND = {"label": "labels"}


def _epoch_metrics(cfg, modes, losses, counts, per_client_flops, acc, train_s, lr) -> dict[str, float]:
    """One epoch's record under the metric names docs/metrics.md lists (each the amount in this epoch);
    test/acc only for an epoch that was tested (acc not None)."""
    def total(kind: str) -> float:
        return float(sum(c[_LEDGER_KIND.get(kind, kind)] for c in counts))

    record = {names.TRAIN_LOSS: sum(t for t, _ in losses) / sum(n for _, n in losses), names.MODE: float(min(modes))}
    record |= {names.comm(kind): total(kind) for kind in names.COMM_KINDS}
    record[names.CLIENT_FLOPS] = float(sum(per_client_flops))
    record |= {names.comm(kind): total(kind) for kind in names.WIRE_KINDS}
    record |= {names.EPOCH_S: train_s, names.LR: lr}
    if acc is not None:  # a tested epoch (eval_every)
        record[names.TEST_ACC] = acc
    link = cfg.link_model()
    if link is not None:
        comm_s = link.seconds(record[names.comm("wire_up")], record[names.comm("wire_down")],
                              sum(c["exchanges"] for c in counts))
        record[names.COMM_S] = comm_s
        record[names.TOTAL_S] = train_s + comm_s
    if cfg.clients > 1:
        for k, (mode, c, fl) in enumerate(zip(modes, counts, per_client_flops)):
            record[names.per_client(names.MODE, k)] = float(mode)
            for kind in names.COMM_KINDS:
                record[names.per_client(names.comm(kind), k)] = float(c[_LEDGER_KIND.get(kind, kind)])
            record[names.per_client(names.CLIENT_FLOPS, k)] = float(fl)
    return record


def _final_metrics(cfg, records, ledger: Ledger) -> dict[str, float]:
    """Totals; final/comm_bytes is every activation and gradient that crossed, the validation
    slice's activations (final/val_bytes) included. Meta bytes are part of up, down and val, so
    final/total_bytes counts them once, there."""
    up, down, val = ledger.run_total("up"), ledger.run_total("down"), ledger.run_total("val")
    totals = {kind: ledger.run_total(kind) for kind in KINDS if kind != "meta"}
    modes = [int(r[names.MODE]) for r in records]
    final = {
        names.FINAL_TEST_ACC: records[-1][names.TEST_ACC],
        names.FINAL_COMM_BYTES: float(up + down + val),
        names.FINAL_TOTAL_BYTES: float(sum(totals.values())),
        names.FINAL_UP_BYTES: float(up),
        names.FINAL_DOWN_BYTES: float(down),
        names.FINAL_LABEL_BYTES: float(totals["labels"]),
        names.FINAL_SYNC_BYTES: float(totals["sync"]),
        names.FINAL_META_BYTES: float(ledger.run_total("meta")),
        names.FINAL_VAL_BYTES: float(val),
        names.FINAL_CLIENT_FLOPS: sum(r[names.CLIENT_FLOPS] for r in records),
        names.FINAL_FULL_EPOCHS: float(modes.count(Mode.FULL)),
        names.FINAL_FORWARD_EPOCHS: float(modes.count(Mode.FORWARD)),
        names.FINAL_CACHED_EPOCHS: float(modes.count(Mode.CACHED)),
        names.FINAL_WIRE_UP_BYTES: float(ledger.run_total("wire_up")),
        names.FINAL_WIRE_DOWN_BYTES: float(ledger.run_total("wire_down")),
        names.FINAL_TRAIN_S: sum(r[names.EPOCH_S] for r in records),
    }
    if cfg.link_model() is not None:
        final[names.FINAL_COMM_S] = sum(r[names.COMM_S] for r in records)
        final[names.FINAL_TOTAL_S] = sum(r[names.TOTAL_S] for r in records)
    return final
