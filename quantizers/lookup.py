"""Fast decoding of one-byte formats on the CPU: two bytes at a time through a 65,536-entry table.

torch converts FP8 to float32 one element at a time on the CPU (about 5 ns each); a table of every
pair of bytes, already multiplied by the message's scale, turns decoding into one gather of
8-byte entries. `scaled_values(q, scale)` is bit for bit `q.float() * scale`: each table entry is
that very product.
"""

from __future__ import annotations

import functools

import torch

# Below this many elements, scaling the table costs more than converting the message.
TABLE_MIN = 1 << 17


@functools.cache
def _pair_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(65536, 2) float32: row i holds the two values whose bytes, read as one uint16, are i."""
    values = torch.arange(256, dtype=torch.uint8).view(dtype).float()
    pairs = torch.cartesian_prod(torch.arange(256), torch.arange(256)).to(torch.uint8)  # every (first, second)
    rows = pairs.view(torch.int16).view(-1).int() & 0xFFFF  # the host's byte order decides the row
    table = torch.empty(1 << 16, 2)
    table[rows] = values[pairs.long()]
    return table.to(device)


def scaled_values(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`q.float() * scale` (scale a 0-dim float32 tensor), bit for bit; tabled for one-byte dtypes."""
    if q.element_size() != 1 or q.numel() % 2 or q.numel() < TABLE_MIN or q.device.type != "cpu":
        return q.float() * scale
    table = (_pair_table(q.dtype, q.device) * scale).view(torch.int64).view(-1)
    rows = q.contiguous().view(torch.uint8).view(-1).view(torch.int16).int() & 0xFFFF
    return torch.index_select(table, 0, rows).view(torch.float32).view(q.shape)
