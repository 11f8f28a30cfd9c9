"""nvfp4: NVIDIA's two-level scaled FP4 (blocks of 16 E2M1 values, an E4M3 scale per block, one
FP32 scale per tensor), as in NVIDIA's "Pretraining Large Language Models with NVFP4"
(arXiv:2509.25149) and Transformer Engine.

The tensor scale maps max|x| onto 448 * 6, the product of E4M3's and E2M1's largest values, so
that every block's scale fits E4M3: global = max|x| / (448 * 6). A block's scale is
max|block| / 6 / global rounded to E4M3 (nearest even); its elements are x / (scale * global)
rounded to E2M1, saturating at 6. Bytes per message: ceil(numel / 16) * 9 + 4, of which the
block scales and the tensor scale are meta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from quantizers import QUANTIZERS, Payload, compiled, elements
from quantizers.compiled import blocks
from quantizers.lookup import float_values
from quantizers.rounding import Rounding

BLOCK = 16


@QUANTIZERS.register("nvfp4")
@dataclass
class NVFP4(Rounding):
    """Payload {"elements": packed E2M1 codes, "scale": E4M3 block scales as uint8, "global":
    float32, 0-dim}. `rounding` applies to the elements. A NaN or inf anywhere makes the whole
    decoded tensor NaN; the global scale is 1 for an all-zero tensor, and a block whose scale
    underflows E4M3 decodes to zeros."""

    stateful: ClassVar[bool] = False
    family: ClassVar[str] = "mx"  # block-scaled, as the MX formats
    # Each element is within half an E2M1 step (1 at the top binade) of a block maximum near 6,
    # which the E4M3 block scale moves by at most 2**-4.
    tolerance: ClassVar[float] = 2.0**-2

    def encode(self, x: torch.Tensor) -> Payload:
        flat = x.detach().float().reshape(-1)
        if flat.numel() % BLOCK:
            flat = torch.nn.functional.pad(flat, (0, -flat.numel() % BLOCK))
        generator = self.generator(x.device)
        fast = compiled.active(x, generator)
        rows = flat.view(-1, BLOCK)  # one block per row
        if fast:
            block_amax = blocks.block_maxima(flat, BLOCK)
        else:
            scaled = rows.abs()
            halves = scaled.view(-1, 2, BLOCK // 2)  # padding zeros raise no maximum
            block_amax = torch.maximum(halves[:, 0], halves[:, 1]).amax(dim=1)  # faster than amax over 16
        amax = block_amax.max()
        top = elements.E4M3.max * elements.E2M1.max
        tensor_scale = torch.where(amax > 0, amax / top, 1.0)
        tensor_scale = torch.where(amax.isfinite(), tensor_scale, torch.nan)
        if fast and amax.isfinite():  # (a NaN or an inf anywhere: the torch path carries the NaN)
            block_scale, step = blocks.block_steps(block_amax, tensor_scale)
        else:
            block_scale = block_amax / elements.E2M1.max / tensor_scale
            block_scale = block_scale.clamp(max=elements.E4M3.max).to(torch.float8_e4m3fn).view(torch.uint8)
            step = float_values(block_scale.view(torch.float8_e4m3fn)) * tensor_scale
        if fast:
            packed = blocks.packed_codes(blocks.divided_blocks(flat, step), elements.E2M1)
        else:
            torch.div(rows, step[:, None], out=scaled)  # |x| is spent: its memory is ready
            elements.zero_rows(scaled, step > 0)  # all-zero blocks (scale 0), or a NaN anywhere
            packed = elements.pack(elements.encode(scaled.view(-1), elements.E2M1, generator), 4)
        return Payload({"elements": packed, "scale": block_scale, "global": tensor_scale},
                       meta=("scale", "global"))

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        packed = p.tensors["elements"]
        steps = float_values(p.tensors["scale"].view(torch.float8_e4m3fn)) * p.tensors["global"]
        if compiled.active(packed):
            values = blocks.decode_blocks(packed.contiguous(), 4, elements.code_values(elements.E2M1), steps)
        else:
            values = elements.decode_packed(packed, elements.E2M1).view(-1, BLOCK)
            values *= steps[:, None]
        return values.view(-1)[: like.numel()].to(like.device, like.dtype).reshape(like.shape)
