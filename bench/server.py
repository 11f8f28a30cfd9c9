"""The server side of a run: the server network and its optimizer, what it holds of each client
(its cache, in the run's layout: bench/layouts, and its validation slice), the average of the
client networks. It answers Frames (`handle`), whichever transport brought them: the in-process
transport calls it directly, `bench serve` drives it from a socket.

The server computes as the run's config says (bench/acceleration.py: amp, channels_last, compile),
in whichever process, and its losses and counts stay on its device (0-dim tensors) until a socket
or the client reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from bench.acceleration import Acceleration
from bench.config import RunConfig
from bench.layouts import Regularisers, Replay, ServerHalf, layout_of
from bench.split import sgd
from bench.wire.frames import Frame, FrameError, Kind
from bench.wire.link import ServerEnd
from quantizers import Payload, reset


@dataclass
class Held:
    """What the server holds of one client: its cache (with the cache's regularisers) and the
    decoded batches of its validation slice."""

    cache: ServerHalf
    val: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


class Server:
    """Answers one run's frames. FULL and FORWARD frames train the server network and refresh the
    sender's cache (a frame with index 0 starts it afresh), STORE frames add a further view to it;
    CACHED frames train on a cached batch; VAL frames replace the sender's validation slice and
    VAL_LOSS asks for the loss on it; SYNC, AVERAGE and FETCH average the client networks (FedAvg,
    weighted by the SYNC values)."""

    def __init__(self, cfg: RunConfig, net: torch.nn.Module, device: torch.device):
        self.accel = Acceleration.of(cfg, device)
        self.net = self.accel.place(net)
        self.accel.compile_all(self.net)
        self.device = device
        self.opt = sgd(cfg, self.net)
        self.label_smoothing = cfg.label_smoothing
        self.ends = [ServerEnd(k, cfg) for k in range(cfg.clients)]
        layout = layout_of(cfg)
        self.held = [Held(layout.server(end, Regularisers.of(cfg, k), device)) for k, end in enumerate(self.ends)]
        self.synced: list[tuple[float, dict[str, torch.Tensor]]] = []
        self.average: dict[str, torch.Tensor] = {}
        self.eval_end = ServerEnd(0, cfg, sends=False)
        self.handlers = {
            Kind.FULL: self._full, Kind.FORWARD: self._forward, Kind.STORE: self._store, Kind.CACHED: self._cached,
            Kind.SYNC: self._sync, Kind.AVERAGE: self._average, Kind.FETCH: self._fetch, Kind.EVAL: self._eval,
            Kind.STATE: self._state, Kind.VAL: self._val, Kind.VAL_LOSS: self._val_loss,
        }

    def handle(self, frame: Frame) -> Frame | None:
        """The reply to `frame` (None for SYNC, AVERAGE, STORE and VAL); FrameError for a frame this
        protocol does not allow here."""
        handler = self.handlers.get(frame.kind)
        if handler is None:
            raise FrameError(f"unexpected {frame.kind.name} frame")
        if not 0 <= frame.client < len(self.ends):
            raise FrameError(f"client {frame.client} is not one of this run's {len(self.ends)}")
        return handler(frame)

    def _full(self, frame: Frame) -> Frame:
        end = self.ends[frame.client]
        acts, labels = end.receive(frame, self.device)
        self._begin(frame)
        self.held[frame.client].cache.full(frame, acts, labels)
        acts = acts.detach().requires_grad_(True)
        loss = self._step(Replay(acts, labels), frame.value)
        return end.gradient(acts.grad, loss)

    def _forward(self, frame: Frame) -> Frame:
        self._begin(frame)
        batch = self.held[frame.client].cache.forward(frame)
        return Frame(Kind.LOSS, frame.client, value=self._step(batch, frame.value))

    def _store(self, frame: Frame) -> None:
        self.held[frame.client].cache.view(frame)

    def _cached(self, frame: Frame) -> Frame:
        batch = self.held[frame.client].cache.cached(frame)
        return Frame(Kind.LOSS, frame.client, value=self._step(batch, frame.value))

    def _begin(self, frame: Frame) -> None:
        if frame.index == 0:  # the client's epoch that sends: its cache and its down codec start afresh
            self.held[frame.client].cache.clear()
            reset(self.ends[frame.client].down)  # no residual outlives the cache or the network it was made for

    def _step(self, batch: Replay, lr) -> torch.Tensor:
        """One SGD step of the server network; the batch's mean loss (checked by the client)."""
        for group in self.opt.param_groups:
            group["lr"] = float(lr)
        self.opt.zero_grad(set_to_none=True)
        with self.accel.autocast():
            loss = batch.loss(self.net(self.accel.input(batch.acts)), self.label_smoothing)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def _val(self, frame: Frame) -> None:
        held = self.held[frame.client]
        if frame.index == 0:
            held.val = []
        held.val.append(self.ends[frame.client].receive(frame, self.device))

    @torch.no_grad()
    def _val_loss(self, frame: Frame) -> Frame:
        """(sum of per-sample losses) of the server, in eval mode, on the client's slice as it holds it."""
        self.net.eval()
        with self.accel.autocast():
            sums = [F.cross_entropy(self.net(self.accel.input(acts)), y, reduction="sum").float()
                    for acts, y in self.held[frame.client].val]
        self.net.train()
        return Frame(Kind.LOSS, frame.client, value=sum(torch.stack(sums).tolist()) if sums else 0.0)  # one read-back

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
