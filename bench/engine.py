"""train(cfg, sink) -> RunResult: split learning with 1..N clients, gated per epoch.

Per epoch each client runs the mode its policy chose (PAPER.md):
    FULL     client forward -> up codec -> server step -> down codec -> client backward/step;
             the server caches what it received (payload and labels).
    FORWARD  frozen client forward (no grad) -> up codec -> server step; cache refreshed (in
             cache_views views, or only the samples that moved with per-sample refresh).
    CACHED   no client work, no bytes: the server trains on its cache (bench/cache.py: the
             cached batches in a reshuffled order, with the cache's regularisers).
Batches are served round-robin across clients (client 1 batch 1, client 2 batch 1, ...) and the
one server network steps after every client batch. After an epoch in which clients updated, the
updated clients' networks are averaged through the server (FedAvg, weighted by shard size) and
sent back; a client that missed averages fetches the latest one before it next computes. One
client is N = 1 of the same loop (nothing to average).
With val_fraction > 0 each client holds a validation slice of its shard out of training; after a
FULL or FORWARD epoch its activations cross through the up codec (counted as val bytes), and after
every epoch the server's loss on the slices it holds feeds the gate.
"""

from __future__ import annotations

import copy
import itertools
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from tqdm import tqdm

from bench import data as datasets
from bench import flops, models
from bench.acceleration import Acceleration
from bench.augment import Crops, Epoch, draw_crops
from bench.cache import BatchCache, Received, Regularisers, Replay, SampleCache
from bench.config import RunConfig
from bench.devices import resolve_device
from bench.errors import RunFailed, UsageError
from bench.gating import Gate
from bench.losses import StepLosses
from bench.refresh import SampleRefresh
from bench.wire import KINDS, Ledger, Link, exchanged_state
from policies import Mode
from quantizers import reset


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
    """One edge device: its shards, its copy of the client network, its link, and what the server
    holds of it (its cache and the activations of its validation slice)."""

    index: int
    shard: torch.Tensor
    val: torch.Tensor  # the validation slice, held out of `shard`
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    link: Link
    generator: torch.Generator
    cache: BatchCache | SampleCache
    refresh: SampleRefresh | None = None
    crops: Crops | None = None  # per-sample refresh: each sample's view until the next FULL epoch
    val_held: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    version: int = 0  # the number of the average this client holds


@dataclass(frozen=True)
class Fresh:
    """One batch a client computes this epoch: images, labels, which view (cache_views) and, with
    per-sample refresh, the samples' positions in the client's shard."""

    x: torch.Tensor
    y: torch.Tensor
    view: int = 0
    positions: torch.Tensor | None = None


@dataclass(frozen=True)
class FreshEpoch:
    """A client's batches of one FULL or FORWARD epoch: each view's Epoch in turn, as Fresh batches
    (with per-sample refresh, one Epoch and the positions of each of its batches)."""

    epochs: list[Epoch]
    positions: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return sum(len(e) for e in self.epochs)

    def __iter__(self):
        if self.positions is not None:
            yield from (Fresh(x, y, positions=p) for (x, y), p in zip(self.epochs[0], self.positions))
            return
        for view, epoch in enumerate(self.epochs):
            yield from (Fresh(x, y, view) for x, y in epoch)


def lr_at(cfg: RunConfig, epoch: float) -> float:
    """PAPER.md's schedule: linear warm-up over `warmup_epochs`, then x lr_gamma at each milestone."""
    warm = min(1.0, (epoch + 1e-9) / cfg.warmup_epochs) if cfg.warmup_epochs else 1.0
    decays = sum(1 for m in cfg.lr_milestones if epoch >= m)
    return cfg.lr * warm * cfg.lr_gamma**decays


def train(cfg: RunConfig, sink: Sink | None = None, *, dataset=None, progress: bool = True,
          check_every: int | None = None) -> RunResult:
    """Run `cfg` to the end, logging each epoch to `sink`; raises RunFailed on a non-finite loss.

    The data set and its augmentation live on the run's device, and no step reads anything back to
    the host: losses stay on the device and are checked at the end of each epoch, and also every
    `check_every` steps if given (a diverging run then stops sooner). Either way RunFailed names
    the epoch, step and client of the first non-finite loss.
    """
    sink = sink or ListSink()
    device = resolve_device(cfg.device)
    accel = Acceleration.of(cfg, device)
    ds = (dataset or cfg.load_data()).to(device)
    torch.manual_seed(cfg.seed)
    client_net, server = models.split(
        models.build(cfg.model, in_channels=ds.in_channels, num_classes=ds.num_classes, width=cfg.width), cfg.cut
    )
    client_net, server = accel.place(client_net), accel.place(server)
    cost = flops.measure(client_net, (ds.in_channels, ds.image_size, ds.image_size))
    ledger = Ledger(cfg.clients)
    clients = [
        _make_client(cfg, k, shard, client_net, ledger, ds.num_classes)
        for k, shard in enumerate(datasets.iid_shards(ds.train_y, cfg.clients, cfg.seed))
    ]
    val_samples = sum(len(c.val) for c in clients)
    if cfg.val_fraction and not all(len(c.val) and len(c.shard) for c in clients):
        raise UsageError(f"val_fraction: {cfg.val_fraction} of shards of {len(clients[0].shard) + len(clients[0].val)} "
                         "samples leaves a validation slice or a training shard empty")
    average = clients[0].net if cfg.clients == 1 else copy.deepcopy(client_net)
    server_opt = _sgd(cfg, server)
    accel.compile_all(*(c.net for c in clients), average, server)
    gate = Gate(cfg.make_policy, cfg.clients, per_client=cfg.gating == "per-client")
    eval_codec = cfg.make_codec("quant_up")
    version, records, modes_seen = 0, [], []

    for epoch in range(cfg.epochs):
        started = time.perf_counter()
        modes = gate.decide(epoch)
        streams = []
        for client, mode in zip(clients, modes):
            if mode != Mode.CACHED and client.version < version:
                _fetch_average(client, average)
                client.version = version
            streams.append((client, mode, _stream(cfg, ds, client, mode, epoch, device)))
        steps = sum(len(batches) for _, _, batches in streams)
        step_losses = StepLosses(cfg.clients, epoch)
        client_flops = [0.0 for _ in clients]
        bar = tqdm(total=steps, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="batch")
        tagged = [zip(itertools.repeat(c), itertools.repeat(m), batches) for c, m, batches in streams]
        schedule = itertools.chain.from_iterable(itertools.zip_longest(*tagged))
        for step, item in enumerate(x for x in schedule if x is not None):
            client, mode, batch = item
            lr = lr_at(cfg, epoch + step / steps)
            for opt in (server_opt, client.opt):
                for group in opt.param_groups:
                    group["lr"] = lr
            step_losses.add(step, client.index, *_step(accel, client, mode, batch, server, server_opt))
            if mode != Mode.CACHED:
                per_sample = cost.forward_backward if mode == Mode.FULL else cost.forward
                client_flops[client.index] += len(batch.y) * per_sample
            if check_every and (step + 1) % check_every == 0:
                step_losses.check()
            bar.update()
        bar.close()
        step_losses.check()
        losses = step_losses.totals()
        updated = [c for c, m in zip(clients, modes) if m == Mode.FULL]
        if cfg.clients > 1 and updated:
            version += 1
            _average(updated, average, version)
        val_losses = None
        if val_samples:
            val_losses = _validate(cfg, accel, ds, clients, modes, server, device, cost, client_flops)
        train_s = time.perf_counter() - started
        acc = evaluate(average, server, ds, eval_codec, device, accel)
        record = _epoch_metrics(cfg, modes, losses, ledger.close_epoch(), client_flops, acc, train_s, lr_at(cfg, epoch))
        if val_losses:
            record["val/loss"] = sum(t for t, _ in val_losses) / val_samples
        gate.record(modes, losses, val_losses)
        records.append(record)
        modes_seen.append(modes)
        sink.log_epoch(epoch, record)

    final = _final_metrics(records, ledger)
    sink.log_final(final)
    return RunResult(cfg, records, final, modes_seen, average, server)


def _sgd(cfg: RunConfig, net: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _make_client(cfg, k, shard, client_net, ledger, num_classes) -> Client:
    net = client_net if cfg.clients == 1 else copy.deepcopy(client_net)
    link = Link(k, cfg.make_codec("quant_up"), cfg.make_codec("quant_down"), ledger, num_classes)
    stream = cfg.seed * 1000 + k + 1
    generator = torch.Generator().manual_seed(stream)
    shard, val = datasets.hold_out(shard, cfg.val_fraction, stream)
    # The regularisers draw from a stream of their own, so turning them on moves no client shuffle.
    regularisers = Regularisers(cfg.cache_mixup, cfg.cache_noise, seed=stream + 500_000)
    if cfg.refresh_threshold is None:
        return Client(k, shard, val, net, _sgd(cfg, net), link, generator, BatchCache(link.up, regularisers))
    cache = SampleCache(len(shard), cfg.batch_size, regularisers)
    return Client(k, shard, val, net, _sgd(cfg, net), link, generator, cache,
                  SampleRefresh(cfg.refresh_threshold, len(shard)))


def _stream(cfg, ds, client: Client, mode: Mode, epoch: int, device):
    """The client's batches for this epoch in serving order (all random draws are taken here)."""
    if mode == Mode.CACHED:
        if not client.cache:
            raise RunFailed(f"epoch {epoch}: client {client.index} is CACHED but nothing was cached yet")
        return client.cache.order(client.generator)
    augment = cfg.augment and not (mode == Mode.FORWARD and cfg.cache_augment == "off")
    client.cache.clear()  # refreshed by what this epoch sends
    client.link.reset()  # no error-feedback residual outlives the cache or the network it was made for
    client.net.train(mode == Mode.FULL or cfg.frozen_bn == "train")
    if client.refresh is not None:
        return _fixed_view_epoch(cfg, ds, client, mode, augment, device)
    views = cfg.cache_views if mode == Mode.FORWARD else 1
    return FreshEpoch([
        datasets.batches(ds, "train", client.shard, cfg.batch_size, augment=augment, shuffle=True,
                         generator=client.generator, device=device)
        for _ in range(views)
    ])


def _fixed_view_epoch(cfg, ds, client: Client, mode: Mode, augment: bool, device) -> FreshEpoch:
    """Per-sample refresh: a shuffled epoch in which each sample shows the view fixed at the last FULL epoch."""
    if augment and (mode == Mode.FULL or client.crops is None):
        client.crops = draw_crops([len(client.shard)], client.generator)
    order = torch.randperm(len(client.shard), generator=client.generator)
    crops = client.crops.take(order) if augment else None
    epoch = datasets.batches(ds, "train", client.shard[order], cfg.batch_size, device=device, crops=crops)
    return FreshEpoch([epoch], list(order.split(cfg.batch_size)))


def _step(accel: Acceleration, client: Client, mode: Mode, batch, server, server_opt) -> tuple[torch.Tensor, int]:
    """One client batch through the cut in `mode`; returns (mean loss as a 0-dim tensor, samples the
    server trained on)."""
    link = client.link
    if mode == Mode.CACHED:
        replay = client.cache.replay(batch)
        return _server_step(accel, server, server_opt, replay), len(replay.labels)
    if mode == Mode.FORWARD:
        with torch.no_grad():
            acts = _client_forward(accel, client.net, batch.x)
        if client.refresh is not None:
            received = Replay(*_send_moved(client, batch, acts))
        else:
            payload, labels = _send(client, batch, acts)
            received = Replay(link.up.decode(payload, acts), labels)
        if batch.view:  # further views are stored for CACHED epochs, not trained on now
            return acts.new_zeros(()), 0
        return _server_step(accel, server, server_opt, received), len(batch.y)
    acts = _client_forward(accel, client.net, batch.x)
    payload, labels = _send(client, batch, acts)
    received = link.receive_up(payload, acts)
    loss = _server_step(accel, server, server_opt, Replay(received, labels))
    grad = link.send_down(received.grad)
    client.opt.zero_grad(set_to_none=True)
    acts.backward(grad)
    client.opt.step()
    return loss, len(batch.y)


def _send(client: Client, batch: Fresh, acts: torch.Tensor):
    """Every sample of the batch crosses and the server caches it; returns (payload, labels as received)."""
    link = client.link
    payload = link.send_up(acts)
    labels = link.send_labels(batch.y)
    if client.refresh is None:
        client.cache.store(Received(payload, labels, acts.shape, acts.dtype), batch.view)
    else:
        received = link.up.decode(payload, acts.detach())
        client.cache.store(batch.positions, received, labels)
        client.refresh.remember(batch.positions, received, labels)
    return payload, labels


def _send_moved(client: Client, batch: Fresh, acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample refresh (bench/refresh.py): the map, then only the samples that moved; the server
    trains on the batch as it now holds it."""
    link = client.link
    sent = client.refresh.select(batch.positions, acts)
    link.send_bitmap(sent)
    if sent.any():
        positions = batch.positions[sent.cpu()]
        payload = link.send_up(acts[sent])
        labels = link.send_labels(batch.y[sent])
        received = link.up.decode(payload, acts[sent])
        client.cache.store(positions, received, labels)
        client.refresh.remember(positions, received, labels)
    return client.cache.read(batch.positions)


def _client_forward(accel: Acceleration, net, x) -> torch.Tensor:
    """The client's activations as they reach the codec: float32 whatever autocast computed them in,
    so that a codec's bytes mean the same with and without --amp."""
    with accel.autocast():
        return net(accel.input(x)).float()


def _server_step(accel: Acceleration, server, opt, batch: Replay) -> torch.Tensor:
    opt.zero_grad(set_to_none=True)
    with accel.autocast():
        loss = batch.loss(server(batch.acts))
    loss.backward()
    opt.step()
    return loss


def _fetch_average(client: Client, average: torch.nn.Module) -> None:
    state = exchanged_state(average)
    client.net.load_state_dict(state, strict=False)
    client.link.send_weights(state)


def _average(updated: list[Client], average: torch.nn.Module, version: int) -> None:
    """FedAvg of the updated clients (weighted by shard size); the average goes back to each of them."""
    weights = torch.tensor([len(c.shard) for c in updated], dtype=torch.float64)
    weights /= weights.sum()
    states = [exchanged_state(c.net) for c in updated]
    for c, state in zip(updated, states):
        c.link.send_weights(state)
    mean = {k: sum(w * s[k].double() for w, s in zip(weights.tolist(), states)).to(states[0][k].dtype) for k in states[0]}
    average.load_state_dict(mean, strict=False)
    for c in updated:
        _fetch_average(c, average)
        c.version = version


def _validate(cfg, accel, ds, clients, modes, server, device, cost, client_flops) -> list[tuple[float, int]]:
    """After the epoch: refreshing clients send their slice; per client, the server's loss on what it holds."""
    for client, mode in zip(clients, modes):
        if mode != Mode.CACHED:
            _send_validation(cfg, accel, ds, client, device)
            client_flops[client.index] += len(client.val) * cost.forward
    return [_validation_loss(accel, server, c) for c in clients]


@torch.no_grad()
def _send_validation(cfg, accel, ds, client: Client, device) -> None:
    """The client's validation slice crosses (val bytes, labels) and replaces what the server held of it."""
    client.net.eval()
    client.val_held = []
    link = client.link
    for x, y in datasets.batches(ds, "train", client.val, cfg.batch_size, device=device):
        acts = _client_forward(accel, client.net, x)
        reset(link.up)  # slice batches are independent, and no training residual reaches them
        payload = link.send_up(acts, kind="val")
        client.val_held.append((link.up.decode(payload, acts), link.send_labels(y)))


@torch.no_grad()
def _validation_loss(accel, server, client: Client) -> tuple[float, int]:
    """(sum of per-sample losses, samples) of the server, in eval mode, on the client's slice as it holds it."""
    server.eval()
    with accel.autocast():
        sums = [F.cross_entropy(server(acts), y, reduction="sum").float() for acts, y in client.val_held]
    server.train()
    total = sum(torch.stack(sums).tolist()) if sums else 0.0  # one read-back
    return total, sum(len(y) for _, y in client.val_held)


@torch.no_grad()
def evaluate(client_net, server, ds, codec, device, accel: Acceleration | None = None) -> float:
    """Test accuracy through the deployed path: activations cross the up codec (bytes not counted).

    Batches are made where ds's tensors are, then moved to `device`; the count is read back once.
    """
    accel = accel or Acceleration(torch.device(device))
    client_net.eval()
    server.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    everything = torch.arange(len(ds.test_y))
    for x, y in datasets.batches(ds, "test", everything, 1000, device=device):
        acts = _client_forward(accel, client_net, x)
        reset(codec)  # test batches are independent: no error-feedback residual crosses between them
        with accel.autocast():
            correct += (server(codec.decode(codec.encode(acts), acts)).argmax(1) == y).sum()
    server.train()
    return correct.item() / len(ds.test_y)


def _epoch_metrics(cfg, modes, losses, counts, per_client_flops, acc, train_s, lr) -> dict[str, float]:
    """One epoch's record under DESIGN.md's metric names (each the amount in this epoch)."""
    record = {
        "train/loss": sum(t for t, _ in losses) / sum(n for _, n in losses),
        "test/acc": acc,
        "mode": float(min(modes)),
        "comm/up_bytes": float(sum(c["up"] for c in counts)),
        "comm/down_bytes": float(sum(c["down"] for c in counts)),
        "comm/sync_bytes": float(sum(c["sync"] for c in counts)),
        "comm/label_bytes": float(sum(c["labels"] for c in counts)),
        "comm/meta_bytes": float(sum(c["meta"] for c in counts)),
        "comm/val_bytes": float(sum(c["val"] for c in counts)),
        "client/flops": float(sum(per_client_flops)),
        "time/epoch_s": train_s,
        "lr": lr,
    }
    if cfg.clients > 1:
        for k, (mode, c, fl) in enumerate(zip(modes, counts, per_client_flops)):
            record[f"mode/client_{k}"] = float(mode)
            for kind in ("up", "down", "sync", "label", "meta", "val"):
                record[f"comm/{kind}_bytes/client_{k}"] = float(c["labels" if kind == "label" else kind])
            record[f"client/flops/client_{k}"] = float(fl)
    return record


def _final_metrics(records, ledger: Ledger) -> dict[str, float]:
    """Totals; final/comm_bytes is every activation and gradient that crossed, the validation
    slice's activations (final/val_bytes) included. Meta bytes are part of up, down and val, so
    final/total_bytes counts them once, there."""
    up, down, val = ledger.run_total("up"), ledger.run_total("down"), ledger.run_total("val")
    totals = {kind: ledger.run_total(kind) for kind in KINDS if kind != "meta"}
    modes = [int(r["mode"]) for r in records]
    return {
        "final/test_acc": records[-1]["test/acc"],
        "final/comm_bytes": float(up + down + val),
        "final/total_bytes": float(sum(totals.values())),
        "final/up_bytes": float(up),
        "final/down_bytes": float(down),
        "final/label_bytes": float(totals["labels"]),
        "final/sync_bytes": float(totals["sync"]),
        "final/meta_bytes": float(ledger.run_total("meta")),
        "final/val_bytes": float(val),
        "final/client_flops": sum(r["client/flops"] for r in records),
        "final/full_epochs": float(modes.count(Mode.FULL)),
        "final/forward_epochs": float(modes.count(Mode.FORWARD)),
        "final/cached_epochs": float(modes.count(Mode.CACHED)),
        "final/train_s": sum(r["time/epoch_s"] for r in records),
    }
