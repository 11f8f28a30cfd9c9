"""The server side of a run: the server network and its optimizer, the per-client caches, the
average of the client networks. It answers Frames (`handle`), whichever transport brought them:
the in-process transport calls it directly, `bench serve` drives it from a socket.

Both sides build the whole network from the run's seed (`split_networks`) and keep their part, so
the server process holds exactly the weights an in-process run would. The server computes as the
run's config says (bench/acceleration.py: amp, channels_last, compile), in whichever process, and
its losses and counts stay on its device (0-dim tensors) until a socket or the client reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench import models
from bench.acceleration import Acceleration
from bench.config import RunConfig
from bench.wire.frames import Frame, FrameError, Kind
from bench.wire.link import ServerEnd
from quantizers import Payload, reset


def split_networks(cfg: RunConfig, in_channels: int, num_classes: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(client part, server part) of the run's network, initialised from the run's seed."""
    torch.manual_seed(cfg.seed)
    net = models.build(cfg.model, in_channels=in_channels, num_classes=num_classes, width=cfg.width)
    return models.split(net, cfg.cut)


def sgd(cfg: RunConfig, net: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


@dataclass(frozen=True)
class CachedBatch:
    """One batch as the server received it: the payload (not re-encoded), labels, and the shape to decode to."""

    payload: Payload
    labels: torch.Tensor
    shape: tuple[int, ...]
    dtype: torch.dtype


class Server:
    """Answers one run's frames. FULL and FORWARD frames train the server network and refresh the
    sender's cache (a frame with index 0 starts it afresh); CACHED frames train on a cached batch;
    SYNC, AVERAGE and FETCH average the client networks (FedAvg, weighted by the SYNC values)."""

    def __init__(self, cfg: RunConfig, net: torch.nn.Module, device: torch.device):
        self.accel = Acceleration.of(cfg, device)
        self.net = self.accel.place(net)
        self.accel.compile_all(self.net)
        self.device = device
        self.opt = sgd(cfg, self.net)
        self.ends = [ServerEnd(k, cfg) for k in range(cfg.clients)]
        self.caches: list[list[CachedBatch]] = [[] for _ in range(cfg.clients)]
        self.synced: list[tuple[float, dict[str, torch.Tensor]]] = []
        self.average: dict[str, torch.Tensor] = {}
        self.eval_end = ServerEnd(0, cfg, sends=False)
        self.handlers = {
            Kind.FULL: self._full, Kind.FORWARD: self._forward, Kind.CACHED: self._cached, Kind.SYNC: self._sync,
            Kind.AVERAGE: self._average, Kind.FETCH: self._fetch, Kind.EVAL: self._eval, Kind.STATE: self._state,
        }

    def handle(self, frame: Frame) -> Frame | None:
        """The reply to `frame` (None for SYNC and AVERAGE); FrameError for a frame this protocol
        does not allow here."""
        handler = self.handlers.get(frame.kind)
        if handler is None:
            raise FrameError(f"unexpected {frame.kind.name} frame")
        if not 0 <= frame.client < len(self.ends):
            raise FrameError(f"client {frame.client} is not one of this run's {len(self.ends)}")
        return handler(frame)

    def _full(self, frame: Frame) -> Frame:
        end = self.ends[frame.client]
        acts, labels = end.receive(frame, self.device)
        acts = acts.detach().requires_grad_(True)
        self._cache(frame, labels)
        loss = self._step(acts, labels, frame.value)
        return end.gradient(acts.grad, loss)

    def _forward(self, frame: Frame) -> Frame:
        acts, labels = self.ends[frame.client].receive(frame, self.device)
        self._cache(frame, labels)
        return Frame(Kind.LOSS, frame.client, value=self._step(acts, labels, frame.value))

    def _cached(self, frame: Frame) -> Frame:
        cache = self.caches[frame.client]
        if not 0 <= frame.index < len(cache):
            raise FrameError(f"client {frame.client} has {len(cache)} cached batches, asked for batch {frame.index}")
        batch = cache[frame.index]
        acts = self.ends[frame.client].decode(batch.payload, batch.shape, batch.dtype, self.device)
        return Frame(Kind.LOSS, frame.client, value=self._step(acts, batch.labels, frame.value))

    def _cache(self, frame: Frame, labels: torch.Tensor) -> None:
        if frame.index == 0:  # the client's epoch that sends: its cache and its down codec start afresh
            self.caches[frame.client] = []
            reset(self.ends[frame.client].down)  # no residual outlives the cache or the network it was made for
        self.caches[frame.client].append(CachedBatch(frame.payload, labels, frame.shape, frame.dtype))

    def _step(self, acts: torch.Tensor, labels: torch.Tensor, lr) -> torch.Tensor:
        """One SGD step of the server network; the batch's mean loss (checked by the client)."""
        for group in self.opt.param_groups:
            group["lr"] = float(lr)
        self.opt.zero_grad(set_to_none=True)
        with self.accel.autocast():
            loss = F.cross_entropy(self.net(self.accel.input(acts)), labels)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def _sync(self, frame: Frame) -> None:
        if frame.payload is None:
            raise FrameError("SYNC frame without weights")
        self.synced.append((float(frame.value), frame.payload.tensors))

    def _average(self, frame: Frame) -> None:
        if not self.synced:
            raise FrameError("AVERAGE frame with no weights synced since the last one")
        weights = torch.tensor([w for w, _ in self.synced], dtype=torch.float64)
        weights /= weights.sum()
        states = [s for _, s in self.synced]
        self.average = {
            k: sum(w * s[k].double() for w, s in zip(weights.tolist(), states)).to(states[0][k].dtype)
            for k in states[0]
        }
        self.synced = []

    def _fetch(self, frame: Frame) -> Frame:
        return Frame(Kind.WEIGHTS, frame.client, payload=Payload(self.average))

    @torch.no_grad()
    def _eval(self, frame: Frame) -> Frame:
        acts, labels = self.eval_end.receive(frame, self.device)
        self.net.eval()
        with self.accel.autocast():
            correct = (self.net(self.accel.input(acts)).argmax(1) == labels).sum()
        self.net.train()
        return Frame(Kind.CORRECT, frame.client, value=correct)

    def _state(self, frame: Frame) -> Frame:
        return Frame(Kind.WEIGHTS, frame.client, payload=Payload(dict(self.net.state_dict())))
