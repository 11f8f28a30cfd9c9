"""How a run uses its device beyond fp32: bf16 autocast, channels-last memory, torch.compile.

All three are RunConfig fields (amp, channels_last, compile) and so logged as params; their
defaults (off, False, False) leave the computation exactly as without this module.

    accel = Acceleration.of(cfg, device)
    net = accel.place(net)             # onto the device, in the chosen memory format
    accel.compile_all(net)             # in place: the module and its state_dict keys stay as they are
    with accel.autocast():
        out = net(accel.input(x))
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

AMP = ("off", "bf16")


@dataclass(frozen=True)
class Acceleration:
    device: torch.device
    amp: str = "off"  # "bf16": client and server forward passes (and the loss) under torch.autocast
    channels_last: bool = False  # weights and inputs in NHWC memory order (faster convolutions on GPUs)
    compile: bool = False  # torch.compile of each network (the first steps pay for compilation)

    @classmethod
    def of(cls, cfg, device: torch.device) -> "Acceleration":
        return cls(device, cfg.amp, cfg.channels_last, cfg.compile)

    def place(self, net: torch.nn.Module) -> torch.nn.Module:
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def compile_all(self, *nets: torch.nn.Module) -> None:
        """Compile each distinct network once (a net may be listed twice: one client is also the average)."""
        if self.compile:
            for net in {id(n): n for n in nets}.values():
                net.compile()

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)
