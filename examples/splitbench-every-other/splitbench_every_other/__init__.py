"""An example splitbench plugin.

- policy `every_other` (registered by its decorator when splitbench imports this module):
  FULL on even epochs, CACHED on odd ones, so the client never runs a forward-only epoch.
- codec `int8_sym` (registered under its entry-point name): symmetric per-tensor int8.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch

from policies import POLICIES, Mode, Observation
from quantizers import Payload


@POLICIES.register("every_other")
@dataclass(frozen=True)
class EveryOther:
    search_space: ClassVar[dict] = {}

    def decide(self, obs: Observation) -> Mode:
        return Mode.FULL if obs.epoch % 2 == 0 else Mode.CACHED


class Int8Symmetric:
    stateful: ClassVar[bool] = False
    family: ClassVar[str] = "int"
    tolerance: ClassVar[float] = 1 / 254

    def encode(self, x: torch.Tensor) -> Payload:
        x = x.detach().float()
        scale = (x.abs().max() / 127).clamp_min(torch.finfo(torch.float32).tiny)
        return Payload({"q": torch.round(x / scale).to(torch.int8), "scale": scale})

    def decode(self, p: Payload, like: torch.Tensor) -> torch.Tensor:
        return (p.tensors["q"].float() * p.tensors["scale"]).to(like.device, like.dtype).reshape(like.shape)
