"""The Link: one client's connection to the server, as a client end and a server end.

Each end holds its own codec instances, built from the run's config with their arguments
(`cfg.make_codec`), and the two ends meet only through a Transport, in Frames. Codec state such as
an error-feedback residual lives at the sender and is cleared there: the client end's up codec when
the client starts an epoch that sends (`reset`), the server end's down codec when that epoch's first
batch arrives (index 0, where the server's cache of the client starts afresh), the evaluation codec
before each test batch. The client end is the only place where
bytes are counted: payload bytes from the tensors that cross, wire bytes from what the transport
moved (a socket's byte count, or in process the same frames' `wire_size`). Evaluation frames and
the end-of-run STATE fetch are not training traffic and are not counted.
"""

from __future__ import annotations

import torch

from bench.config import RunConfig
from bench.errors import RunFailed
from bench.wire.frames import Frame, FrameError, Kind, nbytes
from bench.wire.ledger import Ledger
from bench.wire.transport import Transport
from quantizers import Payload, reset


def label_dtype(num_classes: int) -> torch.dtype:
    return torch.uint8 if num_classes <= 256 else torch.int32


class ClientEnd:
    """The client's end: encodes activations (`quant_up`), decodes gradients (`quant_down`),
    counts every byte of its link in the ledger."""

    def __init__(self, client: int, cfg: RunConfig, transport: Transport, ledger: Ledger, num_classes: int):
        self.client = client
        self.codec_name = cfg.quant_up
        self.up, self.down, self.eval_codec = (cfg.make_codec("quant_up"), cfg.make_codec("quant_down"),
                                               cfg.make_codec("quant_up"))
        self.transport = transport
        self.ledger = ledger
        self.label_dtype = label_dtype(num_classes)

    def reset(self) -> None:
        """Clear the up codec's state: the client starts an epoch that sends (and refreshes its cache)."""
        reset(self.up)

    def full_step(self, acts: torch.Tensor, labels: torch.Tensor, lr: float, index: int,
                  positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, Payload]:
        """Activations and labels up, one server step; (the gradient w.r.t. `acts`, the loss as a
        0-dim tensor, the payload that crossed). `positions`: the samples' places in the shard, for
        a server that caches per sample."""
        frame = self._training_frame(Kind.FULL, acts, labels, lr, index, _aux(positions=positions))
        reply = self._exchange(frame, Kind.GRAD)
        self._count("down", reply.payload)
        self.ledger.add(self.client, "exchanges", 1)
        return self.down.decode(reply.payload, acts), _tensor(reply.value), frame.payload

    def forward_step(self, acts: torch.Tensor, labels: torch.Tensor, lr: float, index: int,
                     positions: torch.Tensor | None = None) -> tuple[torch.Tensor, Payload]:
        """Activations and labels up, one server step, nothing back but the loss (a 0-dim tensor);
        also the payload that crossed."""
        frame = self._training_frame(Kind.FORWARD, acts, labels, lr, index, _aux(positions=positions))
        return _tensor(self._exchange(frame, Kind.LOSS).value), frame.payload

    def refresh_step(self, acts: torch.Tensor, labels: torch.Tensor, lr: float, index: int,
                     positions: torch.Tensor, sent: torch.Tensor) -> tuple[torch.Tensor, Payload | None]:
        """Per-sample refresh (bench/layouts/per_sample.py): the map of which samples follow (counted as up
        and meta, 1 bit per sample), then only those; one server step on the batch as the server
        now holds it. (The loss, the payload that crossed or None when no sample moved.)"""
        bitmap = (len(sent) + 7) // 8
        self.ledger.add(self.client, "up", bitmap)
        self.ledger.add(self.client, "meta", bitmap)
        aux = _aux(positions=positions, sent=sent.cpu())
        if sent.any():
            frame = self._training_frame(Kind.FORWARD, acts[sent], labels[sent], lr, index, aux)
        else:
            frame = Frame(Kind.FORWARD, self.client, index=index, value=lr, aux=aux)
        return _tensor(self._exchange(frame, Kind.LOSS).value), frame.payload

    def store_view(self, acts: torch.Tensor, labels: torch.Tensor, view: int) -> None:
        """A batch of a further view (cache_views) up, for the server's cache only."""
        self._send(self._training_frame(Kind.STORE, acts, labels, 0.0, view))

    def cached_step(self, lr: float, index: int = 0, positions: torch.Tensor | None = None) -> torch.Tensor:
        """One server step on the server's cached batch `index` (or, cached per sample, on the
        samples at `positions`); the loss (a 0-dim tensor)."""
        frame = Frame(Kind.CACHED, self.client, index=index, value=lr, aux=_aux(positions=positions))
        return _tensor(self._exchange(frame, Kind.LOSS).value)

    def send_validation(self, acts: torch.Tensor, labels: torch.Tensor, index: int) -> Payload:
        """A batch of the validation slice up (val bytes; its labels are label bytes); batch 0
        replaces what the server held. Each batch is encoded afresh (no residual crosses)."""
        reset(self.up)
        payload = self.up.encode(acts.detach())
        wire_labels = labels.to(self.label_dtype)
        self._count("val", payload)
        self.ledger.add(self.client, "labels", nbytes(wire_labels))
        self._send(Frame(Kind.VAL, self.client, index=index, payload=payload, labels=wire_labels,
                         shape=tuple(acts.shape), dtype=acts.dtype, codec=self.codec_name))
        return payload

    def validation_loss(self) -> float:
        """The server's summed loss (eval mode) on the validation slice it holds of this client."""
        return float(self._exchange(Frame(Kind.VAL_LOSS, self.client), Kind.LOSS).value)

    def upload_weights(self, state: dict[str, torch.Tensor], weight: float) -> None:
        self.ledger.add(self.client, "sync", exchanged_bytes(state))
        self._send(Frame(Kind.SYNC, self.client, value=weight, payload=Payload(state)))

    def average(self) -> None:
        """The server averages the states uploaded since the last average (by their weights)."""
        self._send(Frame(Kind.AVERAGE, self.client))

    def fetch_weights(self) -> dict[str, torch.Tensor]:
        state = self._exchange(Frame(Kind.FETCH, self.client), Kind.WEIGHTS).payload.tensors
        self.ledger.add(self.client, "sync", exchanged_bytes(state))
        self.ledger.add(self.client, "exchanges", 1)
        return state

    def evaluate(self, acts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Test predictions through the deployed path (the up codec); the count of right answers,
        a 0-dim int64 tensor (on the server's device in process: nothing is read back here)."""
        reset(self.eval_codec)  # test batches are independent: no error-feedback residual crosses between them
        frame = Frame(Kind.EVAL, self.client, payload=self.eval_codec.encode(acts), labels=labels.to(self.label_dtype),
                      shape=tuple(acts.shape), dtype=acts.dtype, codec=self.codec_name)
        return _tensor(self._reply(frame, Kind.CORRECT)[0].value).long()

    def server_state(self) -> dict[str, torch.Tensor]:
        """The server network's whole state, for saving the trained model."""
        return self._reply(Frame(Kind.STATE, self.client), Kind.WEIGHTS)[0].payload.tensors

    def _training_frame(self, kind: Kind, acts, labels, lr: float, index: int, aux=None) -> Frame:
        payload = self.up.encode(acts.detach())
        wire_labels = labels.to(self.label_dtype)
        self._count("up", payload)
        self.ledger.add(self.client, "labels", nbytes(wire_labels))
        return Frame(kind, self.client, index=index, value=lr, payload=payload, labels=wire_labels,
                     shape=tuple(acts.shape), dtype=acts.dtype, codec=self.codec_name, aux=aux or {})

    def _count(self, kind: str, payload: Payload) -> None:
        self.ledger.add(self.client, kind, payload.nbytes)
        self.ledger.add(self.client, "meta", payload.meta_nbytes)

    def _send(self, frame: Frame) -> None:
        self.ledger.add(self.client, "wire_up", self.transport.send(frame))

    def _exchange(self, frame: Frame, expected: Kind) -> Frame:
        reply, sent, received = self._reply(frame, expected)
        self.ledger.add(self.client, "wire_up", sent)
        self.ledger.add(self.client, "wire_down", received)
        return reply

    def _reply(self, frame: Frame, expected: Kind) -> tuple[Frame, int, int]:
        sent = self.transport.send(frame)
        reply, received = self.transport.receive()
        if reply.kind == Kind.ERROR:
            raise RunFailed(f"the server refused a {frame.kind.name} frame: {reply.body.decode(errors='replace')}")
        if reply.kind != expected:
            raise RunFailed(f"the server answered {frame.kind.name} with {reply.kind.name}, expected {expected.name}")
        return reply, sent, received


class ServerEnd:
    """The server's end: decodes activations (`quant_up`), encodes gradients (`quant_down`; none
    for an end that only evaluates)."""

    def __init__(self, client: int, cfg: RunConfig, sends: bool = True):
        self.client = client
        self.codec_name = cfg.quant_up
        self.up = cfg.make_codec("quant_up")
        self.down = cfg.make_codec("quant_down") if sends else None

    def receive(self, frame: Frame, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The activations and labels of a FULL, FORWARD, STORE, VAL or EVAL frame, decoded on `device`."""
        if frame.payload is None or frame.labels is None or frame.dtype is None:
            raise FrameError(f"{frame.kind.name} frame without activations, labels or their dtype")
        if frame.codec != self.codec_name:
            raise FrameError(f"activations encoded with {frame.codec!r}, the run's quant_up is {self.codec_name!r}")
        return self.decode(frame.payload, frame.shape, frame.dtype, device), frame.labels.to(device).long()

    def decode(self, payload: Payload, shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return self.up.decode(payload, torch.empty(shape, dtype=dtype, device=device))

    def gradient(self, grad: torch.Tensor, loss) -> Frame:
        return Frame(Kind.GRAD, self.client, value=loss, payload=self.down.encode(grad))


def _aux(**tensors) -> dict[str, torch.Tensor]:
    """A frame's aux tensors: those given."""
    return {name: t for name, t in tensors.items() if t is not None}


def _tensor(value) -> torch.Tensor:
    """A reply's value as a tensor: in process it already is one (left where it is), over a socket it is a float."""
    return value if isinstance(value, torch.Tensor) else torch.tensor(value)


def exchanged_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What averaging exchanges: every floating-point entry of the state dict (parameters and
    batch-norm running statistics; the integer batch counters are not averaged)."""
    return {k: v for k, v in net.state_dict().items() if v.is_floating_point()}


def exchanged_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(nbytes(v) for v in state.values())
