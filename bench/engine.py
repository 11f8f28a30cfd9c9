"""train(cfg, sink) -> RunResult: split learning with 1..N clients, gated per epoch.

Per epoch each client runs the mode its policy chose (PAPER.md):
    FULL     client forward -> up codec -> server step -> down codec -> client backward/step;
             the server caches what it received (payload and labels).
    FORWARD  frozen client forward (no grad) -> up codec -> server step; cache refreshed (in
             cache_views views, or only the samples that moved with per-sample refresh).
    CACHED   no client work, no bytes: the server trains on its cache (bench/cache.py: the
             cached batches in a reshuffled order, with the cache's regularisers).
With val_fraction > 0 each client holds a validation slice of its shard out of training; after a
FULL or FORWARD epoch its activations cross through the up codec (counted as val bytes), and after
every epoch the server's loss on the slices it holds feeds the gate.
Batches are served round-robin across clients (client 1 batch 1, client 2 batch 1, ...) and the
one server network steps after every client batch. After an epoch in which clients updated, the
updated clients' networks are averaged through the server (FedAvg, weighted by shard size) and
sent back; a client that missed averages fetches the latest one before it next computes. One
client is N = 1 of the same loop (nothing to average).
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from tqdm import tqdm

from bench import data as datasets
from bench import flops, models
from bench.cache import BatchCache, Received, Regularisers, Replay, SampleCache
from bench.config import RunConfig
from bench.errors import RunFailed, UsageError
from bench.gating import Gate
from bench.refresh import SampleRefresh
from bench.wire import KINDS, Ledger, Link, exchanged_state
from policies import Mode
from quantizers import QUANTIZERS


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
    crops: datasets.Crops | None = None  # per-sample refresh: each sample's view until the next FULL epoch
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


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when there is one; asking for CUDA where there is none is a UsageError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device: cuda is not available on this machine (use --device cpu or auto)")
    return torch.device(name)


def lr_at(cfg: RunConfig, epoch: float) -> float:
    """PAPER.md's schedule: linear warm-up over `warmup_epochs`, then x lr_gamma at each milestone."""
    warm = min(1.0, (epoch + 1e-9) / cfg.warmup_epochs) if cfg.warmup_epochs else 1.0
    decays = sum(1 for m in cfg.lr_milestones if epoch >= m)
    return cfg.lr * warm * cfg.lr_gamma**decays


def train(cfg: RunConfig, sink: Sink | None = None, *, dataset=None, progress: bool = True) -> RunResult:
    """Run `cfg` to the end, logging each epoch to `sink`; raises RunFailed on a non-finite loss."""
    sink = sink or ListSink()
    device = resolve_device(cfg.device)
    ds = dataset or cfg.load_data()
    torch.manual_seed(cfg.seed)
    client_net, server = models.split(
        models.build(cfg.model, in_channels=ds.in_channels, num_classes=ds.num_classes, width=cfg.width), cfg.cut
    )
    client_net, server = client_net.to(device), server.to(device)
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
    gate = Gate(cfg.make_policy, cfg.clients, per_client=cfg.gating == "per-client")
    eval_codec = QUANTIZERS.get(cfg.quant_up)()
    version, records, modes_seen = 0, [], []

    for epoch in range(cfg.epochs):
        started = time.perf_counter()
        modes = gate.decide(epoch)
        streams = []
        for client, mode in zip(clients, modes):
            if mode != Mode.CACHED and client.version < version:
                _fetch_average(client, average)
                client.version = version
            streams.append(_stream(cfg, ds, client, mode, epoch, device))
        steps = sum(len(s) for s in streams)
        losses = [[0.0, 0] for _ in clients]
        client_flops = [0.0 for _ in clients]
        bar = tqdm(total=steps, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="batch")
        schedule = itertools.chain.from_iterable(itertools.zip_longest(*[iter(s) for s in streams]))
        for step, item in enumerate(x for x in schedule if x is not None):
            client, mode, batch = item
            lr = lr_at(cfg, epoch + step / steps)
            for opt in (server_opt, client.opt):
                for group in opt.param_groups:
                    group["lr"] = lr
            loss, n = _step(client, mode, batch, server, server_opt, epoch)
            losses[client.index][0] += loss * n
            losses[client.index][1] += n
            if mode != Mode.CACHED:
                per_sample = cost.forward_backward if mode == Mode.FULL else cost.forward
                client_flops[client.index] += len(batch.y) * per_sample
            bar.update()
        bar.close()
        updated = [c for c, m in zip(clients, modes) if m == Mode.FULL]
        if cfg.clients > 1 and updated:
            version += 1
            _average(updated, average, version)
        val_losses = _validate(cfg, ds, clients, modes, server, device, cost, client_flops) if val_samples else None
        train_s = time.perf_counter() - started
        acc = evaluate(average, server, ds, eval_codec, device)
        record = _epoch_metrics(cfg, modes, losses, ledger.close_epoch(), client_flops, acc, train_s, lr_at(cfg, epoch))
        if val_losses:
            record["val/loss"] = sum(t for t, _ in val_losses) / val_samples
        gate.record(modes, [tuple(lo) for lo in losses], val_losses)
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
    link = Link(k, QUANTIZERS.get(cfg.quant_up)(), QUANTIZERS.get(cfg.quant_down)(), ledger, num_classes)
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


def _stream(cfg, ds, client: Client, mode: Mode, epoch: int, device) -> list:
    """The client's batches for this epoch, as (client, mode, batch) in serving order."""
    if mode == Mode.CACHED:
        if not client.cache:
            raise RunFailed(f"epoch {epoch}: client {client.index} is CACHED but nothing was cached yet")
        return [(client, mode, item) for item in client.cache.order(client.generator)]
    augment = cfg.augment and not (mode == Mode.FORWARD and cfg.cache_augment == "off")
    client.cache.clear()  # refreshed by what this epoch sends
    client.net.train(mode == Mode.FULL or cfg.frozen_bn == "train")
    if client.refresh is not None:
        return [(client, mode, batch) for batch in _fixed_view_batches(cfg, ds, client, mode, augment, device)]
    views = cfg.cache_views if mode == Mode.FORWARD else 1
    return [
        (client, mode, Fresh(x.to(device), y.to(device), view))
        for view in range(views)
        for x, y in datasets.batches(
            ds, "train", client.shard, cfg.batch_size, augment=augment, shuffle=True, generator=client.generator
        )
    ]


def _fixed_view_batches(cfg, ds, client: Client, mode: Mode, augment: bool, device) -> list[Fresh]:
    """Per-sample refresh: a shuffled epoch in which each sample shows the view fixed at the last FULL epoch."""
    if augment and (mode == Mode.FULL or client.crops is None):
        client.crops = datasets.draw_crops(len(client.shard), client.generator)
    order = torch.randperm(len(client.shard), generator=client.generator)
    crops = client.crops.take(order) if augment else None
    return [
        Fresh(x.to(device), y.to(device), positions=positions)
        for (x, y), positions in zip(
            datasets.batches(ds, "train", client.shard[order], cfg.batch_size, crops=crops),
            order.split(cfg.batch_size),
        )
    ]


def _step(client: Client, mode: Mode, batch, server, server_opt, epoch: int) -> tuple[float, int]:
    """One client batch through the cut in `mode`; returns (mean loss, samples the server trained on)."""
    link = client.link
    if mode == Mode.CACHED:
        replay = client.cache.replay(batch)
        return _server_step(server, server_opt, replay, client, epoch), len(replay.labels)
    if mode == Mode.FORWARD:
        with torch.no_grad():
            acts = client.net(batch.x)
        if client.refresh is not None:
            received = Replay(*_send_moved(client, batch, acts))
        else:
            payload, labels = _send(client, batch, acts)
            received = Replay(link.up.decode(payload, acts), labels)
        if batch.view:  # further views are stored for CACHED epochs, not trained on now
            return 0.0, 0
        return _server_step(server, server_opt, received, client, epoch), len(batch.y)
    acts = client.net(batch.x)
    payload, labels = _send(client, batch, acts)
    received = link.receive_up(payload, acts)
    loss = _server_step(server, server_opt, Replay(received, labels), client, epoch)
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


def _server_step(server, opt, batch: Replay, client: Client, epoch: int) -> float:
    opt.zero_grad(set_to_none=True)
    loss = batch.loss(server(batch.acts))
    value = loss.item()
    if not math.isfinite(value):
        raise RunFailed(f"train/loss is {value} at epoch {epoch} (client {client.index}): the run diverged")
    loss.backward()
    opt.step()
    return value


def _validate(cfg, ds, clients, modes, server, device, cost, client_flops) -> list[tuple[float, int]]:
    """After the epoch: refreshing clients send their slice; per client, the server's loss on what it holds."""
    for client, mode in zip(clients, modes):
        if mode != Mode.CACHED:
            _send_validation(cfg, ds, client, device)
            client_flops[client.index] += len(client.val) * cost.forward
    return [_validation_loss(server, c) for c in clients]


@torch.no_grad()
def _send_validation(cfg, ds, client: Client, device) -> None:
    """The client's validation slice crosses (val bytes, labels) and replaces what the server held of it."""
    client.net.eval()
    client.val_held = []
    for x, y in datasets.batches(ds, "train", client.val, cfg.batch_size):
        acts = client.net(x.to(device))
        payload = client.link.send_up(acts, kind="val")
        client.val_held.append((client.link.up.decode(payload, acts), client.link.send_labels(y.to(device))))


@torch.no_grad()
def _validation_loss(server, client: Client) -> tuple[float, int]:
    """(sum of per-sample losses, samples) of the server, in eval mode, on the client's slice as it holds it."""
    server.eval()
    total = sum(F.cross_entropy(server(acts), y, reduction="sum").item() for acts, y in client.val_held)
    server.train()
    return total, sum(len(y) for _, y in client.val_held)


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


@torch.no_grad()
def evaluate(client_net, server, ds, codec, device) -> float:
    """Test accuracy through the deployed path: activations cross the up codec (bytes not counted)."""
    client_net.eval()
    server.eval()
    correct = 0
    everything = torch.arange(len(ds.test_y))
    for x, y in datasets.batches(ds, "test", everything, 1000, augment=False, shuffle=False):
        x, y = x.to(device), y.to(device)
        acts = client_net(x)
        correct += (server(codec.decode(codec.encode(acts), acts)).argmax(1) == y).sum().item()
    server.train()
    return correct / len(ds.test_y)


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
        "comm/val_bytes": float(sum(c["val"] for c in counts)),
        "client/flops": float(sum(per_client_flops)),
        "time/epoch_s": train_s,
        "lr": lr,
    }
    if cfg.clients > 1:
        for k, (mode, c, fl) in enumerate(zip(modes, counts, per_client_flops)):
            record[f"mode/client_{k}"] = float(mode)
            for kind in ("up", "down", "sync", "label", "val"):
                record[f"comm/{kind}_bytes/client_{k}"] = float(c["labels" if kind == "label" else kind])
            record[f"client/flops/client_{k}"] = float(fl)
    return record


def _final_metrics(records, ledger: Ledger) -> dict[str, float]:
    """Totals; final/comm_bytes is every activation and gradient that crossed, the validation
    slice's activations (final/val_bytes) included."""
    up, down, val = ledger.run_total("up"), ledger.run_total("down"), ledger.run_total("val")
    totals = {kind: ledger.run_total(kind) for kind in KINDS}
    modes = [int(r["mode"]) for r in records]
    return {
        "final/test_acc": records[-1]["test/acc"],
        "final/comm_bytes": float(up + down + val),
        "final/total_bytes": float(sum(totals.values())),
        "final/up_bytes": float(up),
        "final/down_bytes": float(down),
        "final/label_bytes": float(totals["labels"]),
        "final/sync_bytes": float(totals["sync"]),
        "final/val_bytes": float(val),
        "final/client_flops": sum(r["client/flops"] for r in records),
        "final/full_epochs": float(modes.count(Mode.FULL)),
        "final/forward_epochs": float(modes.count(Mode.FORWARD)),
        "final/cached_epochs": float(modes.count(Mode.CACHED)),
        "final/train_s": sum(r["time/epoch_s"] for r in records),
    }
