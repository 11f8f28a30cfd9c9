"""What the client side and the server side of a run both derive from its config: the whole network,
split at the cut, the optimiser of each part, and each client's stream of random draws.

Both sides build the whole network from the run's seed (`split_networks`) and keep their part, so
a server in another process holds exactly the weights an in-process one would.
"""

from __future__ import annotations

import torch

from bench import models
from bench.config import RunConfig


def split_networks(cfg: RunConfig, in_channels: int, num_classes: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(client part, server part) of the run's network, initialised from the run's seed."""
    torch.manual_seed(cfg.seed)
    net = models.build(cfg.model, in_channels=in_channels, num_classes=num_classes, width=cfg.width)
    return models.split(net, cfg.cut)


def client_stream(cfg: RunConfig, client: int) -> int:
    """The seed of client `client`'s random draws (its shuffles; +500,000: its cache's regularisers)."""
    return cfg.seed * 1000 + client + 1


def sgd(cfg: RunConfig, net: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
