"""Frames: every message between a client end and the server, and its exact layout on a socket.

On a socket a frame is a fixed header, a table with one entry per tensor, the tensors' raw bytes
in table order, then an optional body (UTF-8 JSON for HELLO, the reason for ERROR; raw bytes for
CHALLENGE and AUTH). Nothing is
pickled. All integers are little-endian.

Header (HEADER_SIZE bytes, struct format HEADER):
    length   u64   bytes after the header: table + tensors + body
    magic    4s    b"SPLB"
    version  u8    VERSION
    kind     u8    a Kind
    client   u16   the client the frame is about
    index    u32   FULL/FORWARD: the batch's place in its epoch (0 starts a fresh cache);
                   STORE: the view (cache_views) the batch belongs to;
                   CACHED: the cached batch to train on, numbered in the order they were sent
                   (across views); VAL: the batch's place in the slice (0 replaces what was held)
    value    f64   FULL/FORWARD/CACHED: the learning rate; GRAD/LOSS: the batch's mean loss
                   (for VAL_LOSS the sum of per-sample losses); SYNC: the client's averaging
                   weight; CORRECT: the count of right answers
    ntensors u16   entries in the table
    body     u32   bytes of the body
    dtype    u8    dtype code (DTYPES) of the tensor the payload decodes to (0: none)
    ndim     u32   its number of dimensions (at most MAX_DIMS)
    shape    6 x u32   its shape, zero-padded
    codec    24s   the codec that encoded the payload, UTF-8, zero-padded
Table entry (ENTRY_SIZE bytes, struct format ENTRY), one per tensor:
    name     32s   UTF-8, zero-padded
    flags    u8    META (a codec's scale, index or bitmap tensor) | LABELS (the batch's labels) |
                   AUX (bookkeeping beside the payload: with per-sample refresh `positions`, the
                   batch's places in the client's shard, and `sent`, which of them follow)
    dtype    u8    dtype code
    ndim     u32
    shape    6 x u32
So a frame occupies HEADER_SIZE + ENTRY_SIZE x tensors + tensor bytes + body bytes on the wire
(`wire_size`).
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass, field

import torch

from quantizers import Payload

HEADER = "<Q4sBBHIdHIB7I24s"  # dtype, then ndim and 6 dims as u32
ENTRY = "<32sBB7I"  # name, flags, dtype, then ndim and 6 dims as u32
HEADER_SIZE = struct.calcsize(HEADER)  # 87
ENTRY_SIZE = struct.calcsize(ENTRY)  # 62
MAGIC, VERSION = b"SPLB", 2  # 2: the token is proven (CHALLENGE, AUTH), never sent
MAX_DIMS, NAME_BYTES, CODEC_BYTES = 6, 32, 24
META, LABELS, AUX = 1, 2, 4
# Codes are positions in this tuple plus one; 0 means "no tensor". Append only.
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.float64,
          torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


class Kind(enum.IntEnum):
    """What a frame asks or answers. Client -> server: HELLO, AUTH, FULL, FORWARD, STORE, CACHED,
    SYNC, AVERAGE, FETCH, EVAL, STATE, VAL, VAL_LOSS, BYE. Server -> client: CHALLENGE, READY, GRAD,
    LOSS, WEIGHTS, CORRECT, ERROR."""

    HELLO = 1  # body: JSON {config, in_channels, num_classes}; answered by CHALLENGE
    READY = 2
    FULL = 3  # activations payload + labels; answered by GRAD
    FORWARD = 4  # activations payload + labels; answered by LOSS
    CACHED = 5  # train on cached batch `index`; answered by LOSS
    GRAD = 6  # gradient payload, value = loss
    LOSS = 7
    SYNC = 8  # a client's exchanged state, value = its averaging weight
    AVERAGE = 9  # average the states synced since the last AVERAGE
    FETCH = 10  # answered by WEIGHTS: the latest average
    WEIGHTS = 11
    EVAL = 12  # test activations payload + labels; answered by CORRECT
    CORRECT = 13
    STATE = 14  # answered by WEIGHTS: the server network's whole state
    ERROR = 15  # body: the reason
    BYE = 16
    STORE = 17  # a further view's activations payload + labels, cached for CACHED epochs; no reply
    VAL = 18  # the validation slice's activations payload + labels, held by the server; no reply
    VAL_LOSS = 19  # answered by LOSS: the server's summed loss on the slice it holds
    CHALLENGE = 20  # body: the server's nonce (NONCE_BYTES random bytes, new for every connection)
    AUTH = 21  # body: HMAC-SHA256(token, nonce + HELLO body) (bench/wire/tcp.py); answered by READY or ERROR


class FrameError(Exception):
    """A frame that breaks this format or this protocol; the connection that sent it is closed."""


@dataclass
class Frame:
    """One message. `value` may be a 0-dim tensor in process (no host sync); sockets send its float."""

    kind: Kind
    client: int = 0
    index: int = 0
    value: float | torch.Tensor = 0.0
    payload: Payload | None = None
    labels: torch.Tensor | None = None
    shape: tuple[int, ...] = ()
    dtype: torch.dtype | None = None
    codec: str = ""
    body: bytes = field(default=b"", repr=False)
    aux: dict[str, torch.Tensor] = field(default_factory=dict)

    def tensors(self) -> list[tuple[str, int, torch.Tensor]]:
        """(name, flags, tensor) in table order: the payload's tensors, the labels, the aux tensors."""
        out = []
        if self.payload is not None:
            out += [(n, META if n in self.payload.meta else 0, t) for n, t in self.payload.tensors.items()]
        if self.labels is not None:
            out.append(("labels", LABELS, self.labels))
        out += [(n, AUX, t) for n, t in self.aux.items()]
        return out


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def wire_size(frame: Frame) -> int:
    """Bytes `frame` occupies on a socket, computed without serialising it."""
    entries = frame.tensors()
    return HEADER_SIZE + ENTRY_SIZE * len(entries) + sum(nbytes(t) for _, _, t in entries) + len(frame.body)


@dataclass(frozen=True)
class Header:
    length: int
    kind: Kind
    client: int
    index: int
    value: float
    ntensors: int
    body: int
    dtype: torch.dtype | None
    shape: tuple[int, ...]
    codec: str


@dataclass(frozen=True)
class Entry:
    name: str
    flags: int
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def encode(frame: Frame) -> list[bytes | memoryview]:
    """The frame's bytes as parts to write in order: header and table, each tensor, the body."""
    entries = frame.tensors()
    raws = [_raw(t) for _, _, t in entries]
    table = b"".join(
        struct.pack(ENTRY, _fixed(name, NAME_BYTES, "tensor name"), flags, _code(t.dtype), *_dims(t.shape))
        for name, flags, t in entries
    )
    length = len(table) + sum(r.nbytes for r in raws) + len(frame.body)
    header = struct.pack(
        HEADER, length, MAGIC, VERSION, frame.kind, frame.client, frame.index, float(frame.value), len(entries),
        len(frame.body), _code(frame.dtype) if frame.dtype is not None else 0, *_dims(frame.shape),
        _fixed(frame.codec, CODEC_BYTES, "codec name"),
    )
    return [header + table, *raws, frame.body]


def unpack_header(data: bytes, limit: int) -> Header:
    """The header at the start of a frame; FrameError if it is malformed, of an unknown kind, or
    announces more than `limit` bytes."""
    (length, magic, version, kind, client, index, value, ntensors, body, dtype, ndim, *rest) = struct.unpack(HEADER, data)
    dims, codec = rest[:MAX_DIMS], rest[MAX_DIMS]
    if magic != MAGIC or version != VERSION:
        raise FrameError(f"not a frame of this protocol (magic {magic!r}, version {version})")
    if kind not in Kind._value2member_map_:
        raise FrameError(f"unknown frame kind {kind}")
    if length > limit:
        raise FrameError(f"a frame of {length} bytes exceeds the limit of {limit}")
    if ntensors * ENTRY_SIZE + body > length:
        raise FrameError(f"{ntensors} tensors and a {body}-byte body do not fit in {length} bytes")
    return Header(length, Kind(kind), client, index, value, ntensors, body, _dtype(dtype, allow_none=True),
                  _shape(ndim, dims), _text(codec, "codec name"))


def unpack_table(header: Header, data: bytes) -> list[Entry]:
    """The table's entries; FrameError unless their sizes and the body add up to the header's length."""
    entries = []
    for offset in range(0, len(data), ENTRY_SIZE):
        name, flags, dtype, ndim, *dims = struct.unpack_from(ENTRY, data, offset)
        entries.append(Entry(_text(name, "tensor name"), flags, _dtype(dtype), _shape(ndim, dims)))
    if len(data) + sum(e.nbytes for e in entries) + header.body != header.length:
        raise FrameError(f"the table's tensor sizes do not add up to the frame's length {header.length}")
    if sum(1 for e in entries if e.flags & LABELS) > 1:
        raise FrameError("more than one labels tensor")
    return entries


def assemble(header: Header, entries: list[Entry], tensors: list[torch.Tensor], body: bytes) -> Frame:
    named = [(e, t) for e, t in zip(entries, tensors) if not e.flags & (LABELS | AUX)]
    labels = [t for e, t in zip(entries, tensors) if e.flags & LABELS]
    aux = {e.name: t for e, t in zip(entries, tensors) if e.flags & AUX}
    payload = Payload({e.name: t for e, t in named}, meta=tuple(e.name for e, _ in named if e.flags & META))
    return Frame(header.kind, header.client, header.index, header.value, payload if named else None,
                 labels[0] if labels else None, header.shape, header.dtype, header.codec, body, aux)


def _raw(t: torch.Tensor):
    """The tensor's bytes, without a copy when it is already contiguous on the CPU."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data


def _code(dtype: torch.dtype) -> int:
    if dtype not in DTYPES:
        raise FrameError(f"dtype {dtype} cannot cross the wire (allowed: {', '.join(map(str, DTYPES))})")
    return DTYPES.index(dtype) + 1


def _dtype(code: int, allow_none: bool = False) -> torch.dtype | None:
    if code == 0 and allow_none:
        return None
    if not 1 <= code <= len(DTYPES):
        raise FrameError(f"unknown dtype code {code}")
    return DTYPES[code - 1]


def _dims(shape) -> list[int]:
    if len(shape) > MAX_DIMS:
        raise FrameError(f"a tensor of {len(shape)} dimensions cannot cross the wire (at most {MAX_DIMS})")
    return [len(shape), *shape, *[0] * (MAX_DIMS - len(shape))]


def _shape(ndim: int, dims) -> tuple[int, ...]:
    if ndim > MAX_DIMS:
        raise FrameError(f"{ndim} dimensions (at most {MAX_DIMS})")
    return tuple(dims[:ndim])


def _fixed(text: str, size: int, what: str) -> bytes:
    data = text.encode()
    if len(data) > size:
        raise FrameError(f"{what} {text!r} is longer than {size} bytes")
    return data


def _text(data: bytes, what: str) -> str:
    try:
        return data.rstrip(b"\0").decode()
    except UnicodeDecodeError:
        raise FrameError(f"{what} is not UTF-8") from None
