"""Client computation, measured on the real client network with torch's FLOP counter.

Per sample, by mode (PAPER.md, cost accounting), the engine multiplies these by the number of
samples a client processes in an epoch:
- FULL (A): `forward_backward` (the client runs forward and backward; the optimizer step is not
  counted),
- FORWARD (B): `forward` (the frozen client only runs forward),
- CACHED (C): 0 (the client does nothing).

What is counted is what `torch.utils.flop_counter.FlopCounterMode` counts: convolutions and matrix
products, 2 FLOPs per multiply-accumulate; element-wise work (batch norm, ReLU, pooling, biases)
is not counted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_BATCH = 2  # more than 1 so batch norm runs as in training


@dataclass(frozen=True)
class ClientFlops:
    """FLOPs per sample of one client network."""

    forward: int
    forward_backward: int  # forward + backward; nothing for the optimizer


def measure(client: nn.Module, sample_shape: tuple[int, ...]) -> ClientFlops:
    """Count the FLOPs of one training step of `client` on inputs of `sample_shape` (no batch dim).

    Runs a copy in train mode, so the real client's batch-norm running statistics are untouched.
    The input does not require grad, as the client's data does not: the first layer's backward
    has no input-gradient term, and the counter sees exactly the kernels autograd runs.
    """
    net = copy.deepcopy(client).train()
    param = next(net.parameters())  # every client starts with a conv layer
    # Zeros rather than random values: the count does not depend on them, and drawing them would
    # move the global RNG and so change a seeded run's results.
    x = torch.zeros(_BATCH, *sample_shape, device=param.device, dtype=param.dtype)
    with FlopCounterMode(display=False) as fwd:
        out = net(x)
    with FlopCounterMode(display=False) as bwd:
        out.backward(torch.ones_like(out))
    forward, backward = fwd.get_total_flops(), bwd.get_total_flops()
    # Conv and matmul FLOPs are linear in the batch size, so the per-sample figure is exact.
    assert forward % _BATCH == 0 and backward % _BATCH == 0, (forward, backward)
    return ClientFlops(forward=forward // _BATCH, forward_backward=(forward + backward) // _BATCH)
