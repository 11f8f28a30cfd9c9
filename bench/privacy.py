"""Model inversion: how well the server can turn what crosses the cut back into client images.

Threat model (PAPER.md, "Privacy"): the attacker is the server. It holds the run's final client
network and auxiliary images of its own, the test split, disjoint from the client's training
images. It passes them through the client network (eval mode) and the up codec, so the decoder sees
exactly what arrives over the wire, and trains a decoder (transposed convolutions, Adam, MSE in
pixel space) to map those activations back to the images. It then reconstructs the victims: client
training images, unaugmented, which the decoder never trained on.

Scores, each the mean over victims of a per-image score, images in [0, 1] pixel space:
    mse    mean squared error
    psnr   10 log10(1 / mse) in dB, capped at MAX_PSNR (a perfect reconstruction has mse 0)
    ssim   scikit-image's structural_similarity with Wang et al. (2004)'s settings: an 11x11
           Gaussian window (sigma 1.5), population covariances, averaged over channels
Higher SSIM and PSNR, lower MSE: the activations leak more, the client keeps less privacy.

`attack(..., shuffled=True)` trains the decoder on shuffled (activation, image) pairs. It can learn
no more than what all images share, so it is the floor a real attack has to clear.
`score_run` runs the attack on a logged run and logs the scores to that same run; it is the
function a sweep calls per finished trial.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from bench import data as datasets
from bench import models, names
from bench.config import DEVICES, RunConfig
from bench.errors import UsageError

MAX_PSNR = 100.0  # dB; what a perfect reconstruction scores instead of infinity
GRID_COLUMNS, GRID_PAIRS, GRID_ZOOM = 8, 2, 3  # the PNG: 2 pairs of rows (originals, reconstructions) of 8


@dataclass(frozen=True)
class AttackSettings:
    """The attacker's budget. aux_samples None = the whole test split."""

    epochs: int = 10
    width: int = 64  # channels of every decoder layer
    batch_size: int = 128
    lr: float = 1e-3
    aux_samples: int | None = None
    victims: int = 64
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        for name in ("epochs", "width", "batch_size", "victims"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise UsageError(f"{name}: must be an integer >= 1, got {value!r}")
        if self.aux_samples is not None and not (isinstance(self.aux_samples, int) and self.aux_samples >= 1):
            raise UsageError(f"aux_samples: must be an integer >= 1, got {self.aux_samples!r}")
        if not self.lr > 0:
            raise UsageError(f"lr: must be > 0, got {self.lr!r}")
        if self.device not in DEVICES:
            raise UsageError(f"device: must be one of {', '.join(DEVICES)}, got {self.device!r}")


@dataclass
class AttackResult:
    """Scores (see the module's docstring) and the victims' images, float [V, C, H, W] in [0, 1]."""

    mse: float
    psnr: float
    ssim: float
    originals: torch.Tensor
    reconstructions: torch.Tensor

    def metrics(self, prefix: str = names.PRIVACY) -> dict[str, float]:
        return {f"{prefix}mse": self.mse, f"{prefix}psnr": self.psnr, f"{prefix}ssim": self.ssim}


def attack(client_net: nn.Module, up_codec, dataset: datasets.Dataset, settings: AttackSettings, *,
           shuffled: bool = False) -> AttackResult:
    """Train a decoder on the auxiliary data and reconstruct the victims (see the module's docstring).

    client_net is put in eval mode and moved to the settings' device. Deterministic for a seed.
    """
    from bench.engine import resolve_device

    device = resolve_device(settings.device)
    client_net = client_net.to(device).eval()
    g = torch.Generator().manual_seed(settings.seed)
    aux = _pick(len(dataset.test_y), settings.aux_samples, g)
    victims = _pick(len(dataset.train_y), settings.victims, g)
    aux_acts, aux_images = _observe(client_net, up_codec, dataset, "test", aux, settings.batch_size, device)
    if shuffled:
        aux_images = aux_images[torch.randperm(len(aux_images), generator=g).to(device)]
    torch.manual_seed(settings.seed)
    decoder = build_decoder(tuple(aux_acts.shape[1:]), tuple(aux_images.shape[1:]), settings.width).to(device)
    _fit(decoder, aux_acts, aux_images, settings, g)
    victim_acts, originals = _observe(client_net, up_codec, dataset, "train", victims, settings.batch_size, device)
    decoder.eval()
    with torch.no_grad():
        reconstructions = torch.cat([decoder(a) for a in victim_acts.split(settings.batch_size)])
    originals, reconstructions = originals.cpu(), reconstructions.cpu()
    return AttackResult(**scores(originals, reconstructions), originals=originals, reconstructions=reconstructions)


def build_decoder(act_shape: tuple[int, ...], image_shape: tuple[int, ...], width: int) -> nn.Sequential:
    """Activations of `act_shape` ([C, h, w], or [F] for a flat cut, read as [F, 1, 1]) -> images of
    `image_shape` [C, H, W] in [0, 1]: conv3x3, then one stride-2 transposed conv per doubling from h
    to H, then conv3x3 and a sigmoid; batch norm and ReLU between. H must be h times a power of 2."""
    layers: list[nn.Module] = []
    if len(act_shape) == 1:
        layers.append(nn.Unflatten(1, (act_shape[0], 1, 1)))
        act_shape = (act_shape[0], 1, 1)
    channels, h = act_shape[0], act_shape[1]
    size = image_shape[-1]
    doublings = round(math.log2(size / h)) if size >= h else -1
    if doublings < 0 or h * 2**doublings != size:
        raise UsageError(f"privacy: cannot decode {h}x{h} activations to {size}x{size} images "
                         "(the image size must be the activation size times a power of 2)")
    layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    for _ in range(doublings):
        # Kernel 4, stride 2, padding 1: exactly doubles the size, with no checkerboard from uneven overlap.
        layers += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True)]
    layers += [nn.Conv2d(width, image_shape[0], 3, padding=1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def scores(originals: torch.Tensor, reconstructions: torch.Tensor) -> dict[str, float]:
    """mse, psnr, ssim of [N, C, H, W] images in [0, 1] (H, W >= 11), each the mean over the N images."""
    from skimage.metrics import structural_similarity

    a, b = originals.double().cpu(), reconstructions.double().cpu()
    mse = (a - b).square().flatten(1).mean(1)
    psnr = (10 * torch.log10(1 / mse)).clamp(max=MAX_PSNR)
    ssim = [
        # Wang et al. (2004)'s settings, as scikit-image documents them.
        structural_similarity(x.numpy(), y.numpy(), data_range=1.0, channel_axis=0, gaussian_weights=True,
                              sigma=1.5, use_sample_covariance=False)
        for x, y in zip(a, b)
    ]
    return {"mse": mse.mean().item(), "psnr": psnr.mean().item(), "ssim": float(sum(ssim) / len(ssim))}


def grid(originals: torch.Tensor, reconstructions: torch.Tensor) -> Image.Image:
    """A PNG-ready picture: rows of originals, each directly above its row of reconstructions."""
    from torchvision.utils import make_grid

    columns = min(GRID_COLUMNS, len(originals))
    pairs = min(GRID_PAIRS, len(originals) // columns)
    rows = []
    for i in range(pairs):
        rows += [originals[i * columns:(i + 1) * columns], reconstructions[i * columns:(i + 1) * columns]]
    picture = make_grid(torch.cat(rows), nrow=columns, padding=2, pad_value=1.0)
    picture = F.interpolate(picture[None], scale_factor=GRID_ZOOM, mode="nearest")[0]
    return Image.fromarray(picture.mul(255).round().byte().permute(1, 2, 0).numpy())


def score_run(uri: str, run_id: str, settings: AttackSettings, *, data_dir: str | None = None,
              control: bool = False) -> tuple[AttackResult, AttackResult | None]:
    """Attack MLflow run `run_id` (logged with --save-model) and log to that run: the metrics
    privacy/mse, privacy/psnr, privacy/ssim (with `control`, also privacy/shuffled_* from the
    shuffled-pairs decoder), the settings and git commit as tags privacy.<field>, and the artifact
    privacy/reconstructions.png. Returns (attack, control or None).

    data_dir: where the run's data set is (default: the folder recorded in the run). An unknown run
    or one without weights is a UsageError, raised before any work.
    """
    from bench import tracking

    with tempfile.TemporaryDirectory() as tmp:
        resolved, weights = tracking.fetch_client(uri, run_id, Path(tmp))
        cfg = RunConfig.from_dict(resolved)
        dataset = dataclasses.replace(cfg, data_dir=data_dir or cfg.data_dir).load_data()
        client = client_network(cfg, dataset, torch.load(weights, weights_only=True, map_location="cpu"))
    result = attack(client, cfg.make_codec("quant_up"), dataset, settings)
    metrics = result.metrics()
    floor = None
    if control:
        floor = attack(client, cfg.make_codec("quant_up"), dataset, settings, shuffled=True)
        metrics |= floor.metrics(names.PRIVACY_CONTROL)
    tags = {f"privacy.{k}": str(v) for k, v in dataclasses.asdict(settings).items()}
    tags["privacy.git_commit"] = tracking.git_commit()
    picture = grid(result.originals, result.reconstructions)
    tracking.log_privacy(uri, run_id, metrics, tags, {"reconstructions.png": picture})
    return result, floor


def client_network(cfg: RunConfig, dataset: datasets.Dataset, state: dict) -> nn.Module:
    """The run's client network (the first `cfg.cut` layers of its model) holding `state`."""
    model = models.build(cfg.model, in_channels=dataset.in_channels, num_classes=dataset.num_classes,
                         width=cfg.width)
    client, _ = models.split(model, cfg.cut)
    client.load_state_dict(state)
    return client


def _pick(available: int, wanted: int | None, g: torch.Generator) -> torch.Tensor:
    """`wanted` random indices of range(available), sorted (all of them for None or more than there are)."""
    if wanted is None or wanted >= available:
        return torch.arange(available)
    return torch.randperm(available, generator=g)[:wanted].sort().values


@torch.no_grad()
def _observe(client_net, codec, dataset, split, indices, batch_size, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(activations as the server decodes them, the same images in [0, 1]) for `indices` of `split`."""
    acts = []
    for x, _ in datasets.batches(dataset, split, indices, batch_size, device=device):
        a = client_net(x)
        acts.append(codec.decode(codec.encode(a), a))  # one message per batch, as in training
    images = getattr(dataset, f"{split}_x")[indices].to(device).float() / 255
    return torch.cat(acts), images


def _fit(decoder: nn.Module, acts: torch.Tensor, images: torch.Tensor, settings: AttackSettings,
         g: torch.Generator) -> None:
    opt = torch.optim.Adam(decoder.parameters(), lr=settings.lr)
    decoder.train()
    for _ in range(settings.epochs):
        for batch in torch.randperm(len(acts), generator=g).split(settings.batch_size):
            if len(batch) < 2:  # batch norm needs two samples when the activations are 1x1
                continue
            batch = batch.to(acts.device)
            opt.zero_grad(set_to_none=True)
            F.mse_loss(decoder(acts[batch]), images[batch]).backward()
            opt.step()
