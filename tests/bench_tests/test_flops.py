import torch
from torch import nn

from bench import flops, models


def conv_flops(c_in, c_out, side, k=3):
    """Hand count: 2 FLOPs per multiply-accumulate, one k*k*c_in dot product per output value."""
    return 2 * side * side * c_out * c_in * k * k


def test_single_conv_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    forward = 2 * 32 * 32 * 8 * 3 * 3 * 3
    # Backward: weight gradient only (same count as forward); the input needs no gradient.
    assert flops.measure(conv, (3, 32, 32)) == flops.ClientFlops(forward, 2 * forward)


def test_smallcnn_clients_by_hand():
    model = models.build("smallcnn")
    conv1, conv2 = conv_flops(3, 32, 32), conv_flops(32, 64, 16)
    # cut 2 = conv32, pool: pooling, BN and ReLU are not counted.
    assert conv1 == 1_769_472
    client, _ = models.split(model, 2)
    assert flops.measure(client, (3, 32, 32)) == flops.ClientFlops(conv1, 2 * conv1)
    # cut 4 adds conv64, whose backward has both a weight- and an input-gradient term.
    client, _ = models.split(model, 4)
    assert flops.measure(client, (3, 32, 32)) == flops.ClientFlops(
        conv1 + conv2, 2 * conv1 + 3 * conv2)


def test_linear_layers_count_too():
    client, _ = models.split(models.build("vgg11", width=0.25), 14)  # 8 convs, 5 pools, fc128
    measured = flops.measure(client, (3, 32, 32))
    convs = (conv_flops(3, 16, 32) + conv_flops(16, 32, 16) + conv_flops(32, 64, 8)
             + conv_flops(64, 64, 8) + conv_flops(64, 128, 4) + conv_flops(128, 128, 4)
             + conv_flops(128, 128, 2) + conv_flops(128, 128, 2))
    first = conv_flops(3, 16, 32)
    fc = 2 * 128 * 128
    assert measured.forward == convs + fc
    assert measured.forward_backward == 3 * (convs + fc) - first


def test_half_width_is_about_a_quarter():
    full, _ = models.split(models.build("vgg11"), 4)
    half, _ = models.split(models.build("vgg11", width=0.5), 4)
    ratio = flops.measure(half, (3, 32, 32)).forward / flops.measure(full, (3, 32, 32)).forward
    assert 0.25 < ratio < 0.3  # the first conv keeps its 3 input channels, so it only halves


def test_measuring_leaves_the_client_and_the_rng_untouched():
    client, _ = models.split(models.build("smallcnn"), 2)
    before = {k: v.clone() for k, v in client.state_dict().items()}
    rng = torch.get_rng_state()
    flops.measure(client, (3, 32, 32))
    assert all(torch.equal(v, before[k]) for k, v in client.state_dict().items())
    assert all(p.grad is None for p in client.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_grey_input():
    client, _ = models.split(models.build("smallcnn", in_channels=1), 2)
    assert flops.measure(client, (1, 32, 32)).forward == conv_flops(1, 32, 32)
