"""Fast decoding of one-byte formats on the CPU: two bytes at a time through a 65,536-entry table.

torch converts FP8 to float32 one element at a time on the CPU (about 5 ns each); a table of every
pair of bytes (elements.pair_table), already multiplied by the message's scale, turns decoding into
one gather of 8-byte entries. `scaled_values(q, scale)` is bit for bit `q.float() * scale`, and
`float_values(q)` bit for bit `q.float()`: each table entry is that very value. With the compiled
loops on (quantizers.compiled), `scaled_values` takes compiled.blocks.decode_blocks instead: one
lookup in a 256-entry table and one multiply per element, faster still.
"""

from __future__ import annotations

import functools

import torch

from quantizers import compiled, elements
from quantizers.compiled import blocks

# Below this many elements, scaling the table costs more than converting the message (on the
# reference CPU the table already wins at 2**14, one or two threads). Only with the compiled loops
# off: they take every one-byte CPU message first.
TABLE_MIN = 1 << 14


@functools.cache
def _byte_values(dtype: torch.dtype) -> torch.Tensor:
    """(256,) float32: the value of every byte of one-byte `dtype`."""
    return torch.arange(256, dtype=torch.int32).to(torch.uint8).view(dtype).float()


@functools.cache
def _pair_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(65536,) int64: the two float32 values of every pair of bytes of `dtype`."""
    return elements.pair_table(_byte_values(dtype), 8).to(device)


def _tabled(q: torch.Tensor, least: int) -> bool:
    return q.element_size() == 1 and q.numel() % 2 == 0 and q.numel() >= least and q.device.type == "cpu"


def _lookup(q: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    return elements.decode_pairs(q.contiguous().view(torch.uint8).view(-1), table, 8).view(q.shape)


def scaled_values(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`q.float() * scale` (scale a 0-dim float32 tensor), bit for bit; one-byte dtypes on the CPU
    through compiled.blocks.decode_blocks (one lookup and one multiply per element), else tabled."""
    if compiled.active(q) and q.element_size() == 1:
        codes = q.contiguous().view(torch.uint8).reshape(-1)
        return blocks.decode_blocks(codes, 8, _byte_values(q.dtype), scale.reshape(1)).view(q.shape)
    if not _tabled(q, TABLE_MIN):
        return q.float() * scale
    return _lookup(q, (_pair_table(q.dtype, q.device).view(torch.float32) * scale).view(torch.int64))


def float_values(q: torch.Tensor) -> torch.Tensor:
    """`q.float()`, bit for bit; tabled for one-byte dtypes (the table is ready: any size gains)."""
    return _lookup(q, _pair_table(q.dtype, q.device)) if _tabled(q, 2) else q.float()
