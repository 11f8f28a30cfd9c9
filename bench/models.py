"""The benchmarked networks, as flat sequences of layers, and the cut between client and server.

Every model is an `nn.Sequential` whose children are the layers the cut is counted in (PAPER.md:
"the cut counted in layers including max-pools"), so `split(model, cut)` is a slice:
- vgg11 / vgg13 (with batch norm, CIFAR variant): each conv3x3+BN+ReLU is a layer, each max-pool
  is a layer, then a 512-512-classes classifier of three linear layers (flatten folded into the
  first): vgg11 = 8 convs + 5 pools + 3 = 16 layers, vgg13 = 10 + 5 + 3 = 18.
- resnet18 (CIFAR stem: conv3x3, BN, ReLU, no max-pool): stem, 8 basic blocks, head = 10 layers.
- smallcnn (for quick CPU runs): conv32, pool, conv64, pool, conv128, pool, head (global average
  pool + linear) = 7 layers.

All inputs are 32x32 (Fashion-MNIST is padded upstream); `in_channels` is 3 or 1. `width` scales
every channel count and VGG's hidden widths (rounded, at least 1). Weights are initialised as
torchvision does for convs and batch norm (kaiming-normal, fan-out; BN weight 1, bias 0) and with
PyTorch's default for linear layers, all drawn from torch's global RNG: the same seed gives the
same weights.
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.errors import UsageError
from bench.registry import unknown_name_message

MODELS = ("vgg11", "vgg13", "resnet18", "smallcnn")

# Output channels per conv layer; "M" is a 2x2 max-pool (five of them take 32x32 to 1x1).
_VGG = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
}
_VGG_HIDDEN = 512
_RESNET18_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, stride of first block)
_SMALLCNN = (32, 64, 128)


def build(name: str, *, in_channels: int = 3, num_classes: int = 10,
          width: float = 1.0) -> nn.Sequential:
    """Build model `name` for 32x32 inputs; each child of the result is one layer of the cut."""
    _check_name(name)
    if not width > 0:
        raise UsageError(f"width: must be > 0, got {width}")

    def ch(c: int) -> int:
        return max(1, round(c * width))

    if name in _VGG:
        layers = _vgg(_VGG[name], in_channels, num_classes, ch)
    elif name == "resnet18":
        layers = _resnet18(in_channels, num_classes, ch)
    else:
        layers = _smallcnn(in_channels, num_classes, ch)
    model = nn.Sequential(*layers)
    _init(model)
    return model


def num_layers(name: str) -> int:
    """The number of layers of model `name` (valid cuts: 1..num_layers-1), without building it."""
    _check_name(name)
    if name in _VGG:
        return len(_VGG[name]) + 3
    if name == "resnet18":
        return 1 + 2 * len(_RESNET18_STAGES) + 1
    return 2 * len(_SMALLCNN) + 1


def split(model: nn.Sequential, cut: int) -> tuple[nn.Sequential, nn.Sequential]:
    """(client, server): the first `cut` layers and the rest, sharing the model's modules (no copy).

    `server(client(x))` is exactly `model(x)`. Each side keeps at least one layer.
    """
    n = len(model)
    if not 1 <= cut <= n - 1:
        names = ", ".join(_label(layer) for layer in model)
        raise UsageError(f"cut: must be between 1 and {n - 1} for this {n}-layer model "
                         f"(its layers: {names}), got {cut}")
    return model[:cut], model[cut:]


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two conv3x3+BN, identity or 1x1-conv shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        return (self.body(x) + self.shortcut(x)).relu()


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise UsageError(unknown_name_message("model", name, list(MODELS)))


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    # No conv bias: the batch norm right after it would cancel it.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def _vgg(cfg, in_channels, num_classes, ch) -> list[nn.Module]:
    layers, c = [], in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(_conv_bn_relu(c, ch(v)))
            c = ch(v)
    hidden = ch(_VGG_HIDDEN)
    return layers + [
        nn.Sequential(nn.Flatten(), nn.Linear(c, hidden), nn.ReLU(inplace=True)),
        nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True)),
        nn.Linear(hidden, num_classes),
    ]


def _resnet18(in_channels, num_classes, ch) -> list[nn.Module]:
    layers: list[nn.Module] = [_conv_bn_relu(in_channels, ch(64))]
    c = ch(64)
    for channels, stride in _RESNET18_STAGES:
        layers += [BasicBlock(c, ch(channels), stride), BasicBlock(ch(channels), ch(channels), 1)]
        c = ch(channels)
    layers.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)))
    return layers


def _smallcnn(in_channels, num_classes, ch) -> list[nn.Module]:
    layers, c = [], in_channels
    for v in _SMALLCNN:
        layers += [_conv_bn_relu(c, ch(v)), nn.MaxPool2d(2)]
        c = ch(v)
    # Global average pooling before the classifier: a flat 128x4x4 -> classes head trains
    # erratically at the recipe's lr 0.05 (measured: 28% vs 45% after 5 epochs on 5,000 images).
    layers.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)))
    return layers


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _label(layer: nn.Module) -> str:
    """A short name for one layer, for messages: conv64, pool, block128, fc512, ..."""
    if isinstance(layer, nn.MaxPool2d):
        return "pool"
    if isinstance(layer, BasicBlock):
        return f"block{layer.body[0].out_channels}"
    mods = list(layer.modules())
    convs = [m for m in mods if isinstance(m, nn.Conv2d)]
    if convs:
        return f"conv{convs[0].out_channels}"
    return f"fc{[m for m in mods if isinstance(m, nn.Linear)][-1].out_features}"
