"""Top-k sparsification: each sample keeps its largest-magnitude elements, everything else is zero.

Encode, for `x` of shape (B, ...) (B samples along dim 0; a 0- or 1-dimensional tensor is one
sample) with n elements per sample:
    m = round(k * n) elements kept per sample (at least 1, at most n): the m largest |x| (NaN
    counts above inf); where several share the m-th largest |x|, the lowest positions among them;
    their values, in ascending position order, through the `inner` codec as one (B, m) tensor
    (payload names prefixed "values/"; the inner codec's scales stay meta);
    their positions as whichever is smaller for this message (ties go to the bitmap), both meta:
        "bitmap"  B x ceil(n / 8) bytes, bit j of a sample set when element j is kept
                  (the first element in the most significant bit of the first byte);
        "index"   B x m positions in the smallest unsigned dtype that holds n - 1
                  (uint8, uint16 or uint32).
The receiver knows the shape (from `like`) and k, so it knows m and which form was chosen; nothing
else crosses. Decode: zeros, with the decoded values put back at their positions.

On the CPU, float32 tensors are selected, packed and spread back by compiled loops
(quantizers.compiled.topk); any other tensor takes the torch path (`select`), which gives the same
elements and adds no host sync.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch

from bench.errors import UsageError
from bench.registry import unknown_name_message
from quantizers import QUANTIZERS, Payload, compiled
from quantizers.compiled import topk as compiled_topk

VALUES = "values/"
GATHER_FLAGS = 0x8040201008040201 - (1 << 64)  # sum of 2**(9 j), j < 8, as a signed int64


def index_dtype(n: int) -> torch.dtype:
    """The smallest unsigned integer dtype that holds every position 0..n-1."""
    return torch.uint8 if n <= 1 << 8 else torch.uint16 if n <= 1 << 16 else torch.uint32


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """(B, n) bool -> (B, ceil(n / 8)) uint8, element 0 in the most significant bit of byte 0."""
    rows, n = mask.shape
    if n % 8:
        mask = torch.nn.functional.pad(mask, (0, -n % 8))
    # Eight flags (bytes 0 or 1, host byte order, little-endian) read as one int64 word; the
    # product puts flag i at bit 63 - i, every partial product on a bit of its own (no carries).
    word = mask.contiguous().view(torch.int64) * GATHER_FLAGS
    return (word >> 56).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """The inverse of pack_bits: (B, ceil(n / 8)) uint8 -> (B, n) bool."""
    flags = _byte_flags(packed.device).index_select(0, packed.reshape(-1).int())
    return flags.view(torch.bool).view(len(packed), -1)[:, :n]


@functools.lru_cache(maxsize=None)
def _byte_flags(device: torch.device) -> torch.Tensor:
    """(256,) int64: the eight flags of every byte, most significant bit first, as eight bytes."""
    shifts = torch.arange(7, -1, -1)
    return ((torch.arange(256)[:, None] >> shifts) & 1).to(torch.uint8).view(torch.int64).view(-1).to(device)


@QUANTIZERS.register("topk")
@dataclass
class TopK:
    """Keep the fraction `k` of each sample's elements (largest |x|), values through `inner`."""

    k: float = 0.1
    inner: str = "fp8_e4m3"

    stateful: ClassVar[bool] = False
    family: ClassVar[str] = "sparse"
    search_space: ClassVar[dict] = {
        "k": {"low": 0.001, "high": 0.5, "log": True},
        "inner": {"choices": ["fp8_e4m3", "fp8_e5m2", "fp16", "bf16"]},
    }
    # A dropped element's error is its own magnitude, which is at most max|x|.
    tolerance: ClassVar[float] = 1.0

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, (int, float)) or not 0 < self.k <= 1:
            raise UsageError(f"k: must be a fraction in (0, 1], got {self.k!r}")
        if self.inner not in QUANTIZERS:
            raise UsageError(unknown_name_message("inner", self.inner, QUANTIZERS.names()))
        values = QUANTIZERS.get(self.inner)  # this one name only: asking for every codec would import every plugin
        if self.inner == "topk" or getattr(values, "stateful", False):
            raise UsageError(f"inner: must be a stateless codec other than topk, got {self.inner!r}")
        self._values = values()

    def kept(self, n: int) -> int:
        """Elements kept out of a sample's n."""
        return min(n, max(1, round(self.k * n)))

    def encode(self, x: torch.Tensor) -> Payload:
        rows = _rows(x.detach())
        count, n = len(rows), rows.shape[1]
        m = self.kept(n)
        where = "index" if _index_is_smaller(count, n, m) else "bitmap"
        if kernels := _compiled(rows):
            kept, form = kernels.select(rows, m, where)
        else:
            kept, form = select(rows, m)
            if where == "bitmap":
                form = pack_bits(torch.zeros(count, n, dtype=torch.bool, device=rows.device).scatter_(1, form, True))
        values = self._values.encode(kept)
        tensors = {VALUES + name: t for name, t in values.tensors.items()}
        tensors[where] = form.to(index_dtype(n)) if where == "index" else form
        return Payload(tensors, meta=(where, *(VALUES + name for name in values.meta)))

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        count, n = _rows(like).shape
        m = self.kept(n)
        inner = Payload({k.removeprefix(VALUES): t for k, t in p.tensors.items() if k.startswith(VALUES)})
        values = self._values.decode(inner, torch.empty(count, m, dtype=like.dtype, device=like.device))
        if "index" in p.tensors:
            out = torch.zeros(count, n, dtype=like.dtype, device=like.device)
            out.scatter_(1, p.tensors["index"].to(like.device).long(), values)
        elif kernels := _compiled(values):
            out = kernels.spread(p.tensors["bitmap"], values, n)
        else:
            out = torch.zeros(count, n, dtype=like.dtype, device=like.device)
            out.masked_scatter_(unpack_bits(p.tensors["bitmap"].to(like.device), n), values)
        return out.reshape(like.shape)


def select(rows: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's m kept values (B, m) in ascending position order, and their positions (B, m):
    the m largest keys (|x|'s bits as an integer, so NaN above inf), ties at the m-th going to the
    lowest positions. Any device, no host sync. (TopK.encode sends CPU float32 rows to the compiled
    selection instead, which keeps the same elements.)"""
    keys = rows.view(_INTEGER[rows.element_size()]) & torch.iinfo(_INTEGER[rows.element_size()]).max
    threshold = keys.topk(m, dim=1, sorted=False).values.amin(1, keepdim=True)
    above, tie = keys > threshold, keys == threshold
    keep = above | (tie & (tie.cumsum(1) <= m - above.sum(1, keepdim=True)))
    # Kept element j goes to column (number kept before it); the rest all land in column m, dropped.
    column = torch.where(keep, keep.cumsum(1) - 1, m)
    order = torch.arange(rows.shape[1], device=rows.device).expand_as(rows)
    positions = torch.empty(len(rows), m + 1, dtype=torch.long, device=rows.device).scatter_(1, column, order)[:, :m]
    return rows.gather(1, positions), positions


_INTEGER = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _compiled(t: torch.Tensor):
    """The compiled CPU loops (quantizers.compiled.topk) for a CPU float32 tensor, else None."""
    return compiled_topk if compiled.active(t) and t.dtype == torch.float32 else None


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1) if x.dim() >= 2 else x.reshape(1, -1)


def _index_is_smaller(count: int, n: int, m: int) -> bool:
    return count * m * index_dtype(n).itemsize < count * -(-n // 8)
