import pytest
import torch

from bench import models
from bench.errors import UsageError

LAYERS = {"vgg11": 16, "vgg13": 18, "resnet18": 10, "smallcnn": 7}


def test_models_and_layer_counts():
    assert models.MODELS == tuple(LAYERS)
    for name, n in LAYERS.items():
        assert models.num_layers(name) == n
        assert len(models.build(name, width=0.25)) == n


@pytest.mark.parametrize("name", models.MODELS)
@pytest.mark.parametrize("in_channels", [3, 1])
@pytest.mark.parametrize("width", [1.0, 0.25])
def test_output_shape(name, in_channels, width):
    model = models.build(name, in_channels=in_channels, width=width).eval()
    with torch.no_grad():
        assert model(torch.randn(2, in_channels, 32, 32)).shape == (2, 10)


def test_num_classes():
    assert models.build("smallcnn", num_classes=7)(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name, cut, width, shape", [
    ("vgg11", 4, 1.0, (128, 8, 8)),      # conv64, pool, conv128, pool
    ("vgg11", 4, 0.5, (64, 8, 8)),
    ("vgg11", 14, 0.25, (128,)),         # ..., 5 pools, fc512 at width 0.25
    ("vgg13", 2, 1.0, (64, 32, 32)),     # conv64, conv64
    ("resnet18", 2, 1.0, (64, 32, 32)),  # stem, block
    ("resnet18", 4, 1.0, (128, 16, 16)),
    ("smallcnn", 2, 1.0, (32, 16, 16)),  # conv32, pool
    ("smallcnn", 6, 1.0, (128, 4, 4)),
])
def test_split_client_output_shape(name, cut, width, shape):
    client, server = models.split(models.build(name, width=width), cut)
    assert len(client) == cut and len(server) == models.num_layers(name) - cut
    with torch.no_grad():
        assert client(torch.randn(3, 3, 32, 32)).shape == (3, *shape)


@pytest.mark.parametrize("name", models.MODELS)
def test_split_composes_to_the_full_model_and_shares_modules(name):
    torch.manual_seed(0)
    model = models.build(name, width=0.25).eval()
    client, server = models.split(model, 2)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(server(client(x)), model(x))
    assert client[0] is model[0] and server[-1] is model[-1]


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = models.build("resnet18", width=0.25).state_dict()
    torch.manual_seed(3)
    b = models.build("resnet18", width=0.25).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = models.build("resnet18", width=0.25).state_dict()
    assert not torch.equal(a["0.0.weight"], c["0.0.weight"])


def test_width_scales_channels_rounding_to_at_least_one():
    assert models.build("vgg11", width=0.5)[0][0].out_channels == 32
    assert models.build("vgg11", width=0.5)[-1].in_features == 256
    assert models.build("smallcnn", width=0.001)[0][0].out_channels == 1


def test_cut_out_of_range():
    model = models.build("vgg11", width=0.25)
    with pytest.raises(UsageError) as e:
        models.split(model, 16)
    assert str(e.value) == (
        "cut: must be between 1 and 15 for this 16-layer model (its layers: conv16, pool, conv32, "
        "pool, conv64, conv64, pool, conv128, conv128, pool, conv128, conv128, pool, fc128, fc128, "
        "fc10), got 16")
    with pytest.raises(UsageError, match=r"^cut: must be between 1 and 9 .*block64.*got 0$"):
        models.split(models.build("resnet18", width=0.25), 0)


def test_unknown_model_and_bad_width():
    with pytest.raises(UsageError) as e:
        models.build("vgg16")
    assert str(e.value).startswith("model: unknown name 'vgg16'; did you mean")
    assert "vgg11, vgg13, resnet18, smallcnn" in str(e.value)
    with pytest.raises(UsageError, match="^model: unknown name 'resnet'"):
        models.num_layers("resnet")
    for width in (0, -1.0, float("nan")):
        with pytest.raises(UsageError, match="^width: must be > 0"):
            models.build("smallcnn", width=width)
