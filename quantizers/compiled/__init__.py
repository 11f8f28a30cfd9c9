"""Compiled CPU loops (numba) for the codecs whose torch paths cost the most on a CPU.

On a CPU, torch runs every step of an encoding as a pass of its own over memory, most into a fresh
tensor; for the block-scaled formats and topk those passes, not the arithmetic, are the cost.
    blocks   MX and nvfp4: block scales, minifloat rounding on the float32 bits, packing, decoding;
    topk     the per-row selection without a sort, the bitmap, and the spread back.
Each gives, bit for bit, what the codec's torch path gives; that path remains for other devices and
for stochastic rounding, and the tests check both on the CPU by switching these off (ENABLED).
One thread per call: a second one, started beside torch's, measured slower (torch's idle workers
spin for a while after each parallel region and hold the other core). Compiled on first use and
cached next to the source (numba's cache=True): a machine compiles once (about 4 s), and each later
process only loads them (about half a second, at its first call).
"""

from __future__ import annotations

import numba
import torch

# False sends every codec down its torch path, on any device (the tests compare the two).
ENABLED = True

# How every loop here is compiled: on first use, kept on disk; the GIL released; IEEE division
# (x / 0 is inf, not an error). `inlined`: a helper compiled into each caller, whose loops then
# vectorize with the caller's (a call per block would not).
loop = numba.njit(cache=True, nogil=True, error_model="numpy")
inlined = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


def active(x: torch.Tensor, generator: torch.Generator | None = None) -> bool:
    """Whether a codec should take the compiled loops for `x`: a CPU tensor, nearest rounding."""
    return ENABLED and generator is None and x.device.type == "cpu"
