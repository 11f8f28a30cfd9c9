"""topk's CPU kernels, compiled by numba: the per-row selection, the bitmap, and the spread back.

Magnitudes are compared as keys: a float32's bits with the sign bit cleared, read as int32, order
exactly like |x| (NaN above inf). Per row, without sorting:
    a histogram of every 17th key's top bits places a floor that, almost surely, at least m keys
    reach (if fewer do, the histogram of the whole row places it exactly);
    one branch-free pass lists the positions reaching the floor (about 1.4 m of them);
    a radix select over their keys, 8 bits at a time, finds the threshold T, the m-th largest;
    a branch-free pass over the list keeps every key above T and, of the keys equal to T, the
    first ones by position until m are kept.
"""

from __future__ import annotations

import numpy as np
import torch
from numba.cpython.unsafe.numbers import leading_zeros

from quantizers.compiled import loop

MAGNITUDE = np.int32(0x7FFFFFFF)
TOP_SHIFT = 19  # the sample's digit: the key's top 12 bits
DIGIT_BITS = 8  # the threshold's digits below the floor's, from the candidates
SAMPLES = 512  # keys sampled per row to place the candidates' floor


def select(rows: torch.Tensor, m: int, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """quantizers.topk.select for CPU float32 rows: (B, m) values, and the positions in the form
    `where` names: "index", (B, m) int32, or "bitmap", quantizers.topk.pack_bits's (B, ceil(n / 8))."""
    count, n = rows.shape
    values = torch.empty(count, m, dtype=torch.float32)
    if where == "index":
        positions, bitmap = torch.empty(count, m, dtype=torch.int32), torch.empty(0, 0, dtype=torch.uint8)
    else:  # one row of positions, reused: each row's bitmap is set from it
        positions, bitmap = torch.empty(1, m, dtype=torch.int32), torch.empty(count, -(-n // 8), dtype=torch.uint8)
    _select(rows.contiguous().numpy(), values.numpy(), positions.numpy(), bitmap.numpy())
    return values, positions if where == "index" else bitmap


def spread(bitmap: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n) float32: CPU float32 values (B, m) put back at the bitmap's set positions, zeros
    elsewhere. A bitmap of another shape or dtype is an error (the loop reads it unchecked)."""
    bitmap = bitmap.to(values.device)
    if bitmap.dtype != torch.uint8 or tuple(bitmap.shape) != (len(values), -(-n // 8)):
        raise ValueError(f"bitmap: expected uint8 of shape ({len(values)}, {-(-n // 8)}), "
                         f"got {bitmap.dtype} of shape {tuple(bitmap.shape)}")
    out = torch.empty(len(values), n, dtype=torch.float32)
    _spread(bitmap.contiguous().numpy(), values.contiguous().numpy(), out.numpy())
    return out


@loop
def _select(x, values, positions, bitmap):
    """x (B, n) float32: writes each row's m kept values, in ascending position order, to values
    (B, m) float32, and their positions to positions (B, m) int32, or, given a bitmap (B, ceil(n / 8))
    uint8, to positions (1, m) and from there to the row's bitmap."""
    rows, n = x.shape
    m = values.shape[1]
    bits = x.view(np.int32)
    stride = (n // SAMPLES) | 1  # odd: a power-of-two stride would sample one column of every feature map
    sampled = -(-n // stride)
    expected = m * sampled / n
    # Enough sampled keys at or above the floor that the whole row almost surely has m there too.
    wanted = m if stride == 1 else min(sampled, int(expected + 2.5 * np.sqrt(expected) + 2))
    hist = np.empty(1 << (31 - TOP_SHIFT), np.int32)
    cand = np.empty(n, np.int32)
    keys = np.empty(n, np.int32)
    for r in range(rows):
        row = bits[r]
        floor = _floor(row, stride, wanted, hist)
        count = _compact(row, floor, cand)
        if count < m:  # the sample misled: the floor from the whole row
            floor = _floor(row, 1, m, hist)
            count = _compact(row, floor, cand)
        for c in range(count):
            keys[c] = row[cand[c]] & MAGNITUDE
        threshold, above = _threshold(keys, count, m, floor, hist)
        ties = m - above  # keys equal to the threshold that are kept: the first ones by position
        kept, c = 0, 0
        while kept < m:  # branch-free like _compact; the m-th kept ends the loop, so no write passes m
            j = cand[c]
            key = row[j] & MAGNITUDE
            tie = key == threshold
            keep = (key > threshold) | (tie & (ties > 0))
            ties -= tie
            positions[r % len(positions), kept] = j
            values[r, kept] = x[r, j]
            kept += keep
            c += 1
        if len(bitmap):
            _pack(positions[0], bitmap[r])


@loop
def _floor(row, stride, wanted, hist):
    """A key with at least `wanted` of the row's every stride-th keys at or above it: the low end
    of the top digit that reaches them."""
    hist.fill(0)
    top = 0
    for j in range(0, len(row), stride):
        digit = (row[j] & MAGNITUDE) >> TOP_SHIFT
        hist[digit] += 1
        top = max(top, digit)
    digit, _ = _digit_reaching(hist[:top + 1], wanted)
    return digit << TOP_SHIFT


@loop
def _compact(row, floor, cand):
    """Writes the positions of the row's keys at or above `floor` to cand, in order; returns their count."""
    count = 0
    for j in range(len(row)):  # branch-free: every position is written, only those kept advance
        cand[count] = j
        count += (row[j] & MAGNITUDE) >= floor
    return count


@loop
def _threshold(keys, count, m, base, hist):
    """The m-th largest of keys[:count] (none below base) and how many keys are larger, digit by
    digit from the top; keys[:count] is overwritten."""
    above = 0
    while True:
        top = base
        for c in range(count):
            top = max(top, keys[c])
        shift = max(0, _bit_length(top - base) - DIGIT_BITS)
        digits = hist[:((top - base) >> shift) + 1]
        digits.fill(0)
        for c in range(count):
            digits[(keys[c] - base) >> shift] += 1
        digit, more = _digit_reaching(digits, m - above)
        above += more
        base += digit << shift
        if shift == 0:
            return base, above
        inside = 0
        for c in range(count):  # branch-free: the keys within the threshold's digit move to the front
            key = keys[c]
            keys[inside] = key
            inside += (key - base) >> shift == 0
        count = inside


@loop
def _digit_reaching(hist, wanted):
    """The largest digit d with at least `wanted` keys at d or above, and the count strictly above d."""
    above = 0
    for d in range(len(hist) - 1, -1, -1):
        if above + hist[d] >= wanted:
            return d, above
        above += hist[d]
    return 0, above


@loop
def _bit_length(v):
    length = 0
    while v >> length:
        length += 1
    return length


@loop
def _pack(positions, bitmap):
    """Sets bit (7 - p % 8) of byte p // 8 of bitmap (uint8) for each of the positions p, and clears
    every other bit."""
    bitmap.fill(0)
    for p in positions:
        bitmap[p >> 3] |= np.uint8(0x80 >> (p & 7))


@loop
def _spread(bitmap, values, out):
    """out (B, n) float32: each row's values (B, m), in order, at the positions of its bitmap's set
    bits, zeros elsewhere. Bits past n, and set bits past the m-th, are ignored."""
    rows, n = out.shape
    width = bitmap.shape[1]
    whole = n // 64  # words of 64 elements, read eight bytes at a time, the first byte in the top bits
    for r in range(rows):
        out[r].fill(0)
        kept = 0
        for w in range(whole):
            word = np.uint64(0)
            for b in range(8 * w, 8 * w + 8):
                word = (word << np.uint64(8)) | np.uint64(bitmap[r, b])
            kept = _spread_word(word, 64 * w, values[r], kept, out[r])
        if whole * 64 < n:
            word = np.uint64(0)
            for b in range(8 * whole, 8 * whole + 8):
                word = (word << np.uint64(8)) | np.uint64(bitmap[r, b] if b < width else 0)
            word &= ~np.uint64(0) << np.uint64(64 - (n - 64 * whole))
            _spread_word(word, 64 * whole, values[r], kept, out[r])


@loop
def _spread_word(word, start, values, kept, out):
    """Puts values[kept:] at start + the offsets of word's set bits (top bit first); the new kept."""
    while word and kept < len(values):
        z = leading_zeros(word)
        out[start + z] = values[kept]
        kept += 1
        word &= ~(np.uint64(1 << 63) >> np.uint64(z))
    return kept
