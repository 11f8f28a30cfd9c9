"""The model-inversion attack: exact scores, a decoder that can invert an identity cut, the
shuffled-pairs floor, and `python -m bench privacy` on a logged run."""

import math

import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image
from torch import nn

from bench import data, models, names, privacy
from bench.errors import UsageError
from quantizers import QUANTIZERS, Payload
from tests.conftest import cli

FAST = privacy.AttackSettings(epochs=4, width=16, batch_size=32, lr=3e-3, aux_samples=200, victims=16,
                              device="cpu")


@pytest.fixture(scope="module")
def synthetic():
    return data.load("synthetic", train_subset=100, test_subset=200, seed=0)


def in_range(result):
    return result.mse >= 0 and 0 < result.psnr <= privacy.MAX_PSNR and -1 <= result.ssim <= 1


def test_perfect_reconstructions_score_ssim_1_and_capped_psnr():
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert privacy.scores(images, images) == {"mse": 0.0, "psnr": privacy.MAX_PSNR, "ssim": 1.0}


def test_known_error_gives_exact_mse_and_psnr():
    images = torch.full((2, 3, 32, 32), 0.5)
    signs = torch.ones(32, 32)
    signs[::2] = -1  # rows alternately +0.1 and -0.1: the squared error is 0.01 everywhere
    s = privacy.scores(images, images + 0.1 * signs)
    assert s["mse"] == pytest.approx(0.01)
    assert s["psnr"] == pytest.approx(20.0)
    assert 0 <= s["ssim"] < 1


@pytest.mark.parametrize("act_shape, doublings", [((3, 32, 32), 0), ((32, 16, 16), 1), ((128, 4, 4), 3), ((64,), 5)])
def test_decoder_upsamples_any_cut_to_the_image_size(act_shape, doublings):
    decoder = privacy.build_decoder(act_shape, (3, 32, 32), width=8)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in decoder) == doublings
    out = decoder(torch.randn(2, *act_shape))
    assert out.shape == (2, 3, 32, 32) and 0 <= out.min() and out.max() <= 1


def test_decoder_refuses_sizes_that_are_not_a_power_of_2_apart():
    with pytest.raises(UsageError, match="cannot decode 3x3 activations to 32x32"):
        privacy.build_decoder((8, 3, 3), (3, 32, 32), width=8)


def test_identity_cut_is_inverted_and_shuffled_pairs_are_not(synthetic):
    fp32 = QUANTIZERS.get("fp32")()
    real = privacy.attack(nn.Identity(), fp32, synthetic, FAST)
    floor = privacy.attack(nn.Identity(), fp32, synthetic, FAST, shuffled=True)
    assert in_range(real) and in_range(floor)
    assert real.ssim > 0.8 and real.psnr > 18
    assert floor.ssim < 0.2 and real.ssim > floor.ssim + 0.6
    assert real.originals.shape == real.reconstructions.shape == (FAST.victims, 3, 32, 32)
    # The victims are client training images, which the decoder never trained on.
    victims = (real.originals * 255).round().byte()
    assert all(any(torch.equal(v, t) for t in synthetic.train_x) for v in victims)


class Blank:
    """A codec that sends nothing of the activations: the server decodes zeros."""

    stateful = False

    def encode(self, x):
        return Payload({})

    def decode(self, p, like):
        return torch.zeros_like(like)


def test_the_attacker_sees_the_activations_through_the_up_codec(synthetic):
    """Catches: an attack that ignores the codec (it would invert the clean activations)."""
    settings = privacy.AttackSettings(epochs=1, width=8, aux_samples=64, victims=8, device="cpu")
    blind = privacy.attack(nn.Identity(), Blank(), synthetic, settings)
    # Every victim decodes from the same zeros, so every reconstruction is the same picture.
    assert all(torch.equal(r, blind.reconstructions[0]) for r in blind.reconstructions)
    assert not torch.equal(blind.originals[0], blind.originals[1])


def test_attack_through_a_cnn_and_fp8_is_deterministic_and_in_range(synthetic):
    torch.manual_seed(0)
    client, _ = models.split(models.build("smallcnn", width=0.25), 2)
    fp8 = QUANTIZERS.get("fp8_e4m3")()
    settings = privacy.AttackSettings(epochs=1, width=8, aux_samples=64, victims=8, device="cpu")
    a = privacy.attack(client, fp8, synthetic, settings)
    b = privacy.attack(client, fp8, synthetic, settings)
    assert in_range(a) and (a.mse, a.psnr, a.ssim) == (b.mse, b.psnr, b.ssim)


def test_grid_puts_each_row_of_originals_above_its_reconstructions():
    originals, reconstructions = torch.ones(16, 3, 32, 32), torch.zeros(16, 3, 32, 32)
    picture = privacy.grid(originals, reconstructions)
    zoom, cell = privacy.GRID_ZOOM, 34  # 32 px and a 2 px border
    assert picture.size == (8 * cell * zoom + 2 * zoom, 4 * cell * zoom + 2 * zoom)
    middle = lambda row: picture.getpixel((zoom * 18, zoom * (2 + row * cell + 16)))  # noqa: E731
    assert [middle(r) for r in range(4)] == [(255, 255, 255), (0, 0, 0)] * 2


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(victims=0), dict(aux_samples=0), dict(lr=0.0),
                                 dict(device="tpu")])
def test_settings_are_validated(bad):
    with pytest.raises(UsageError, match=next(iter(bad))):
        privacy.AttackSettings(**bad)


TINY = ["--model", "smallcnn", "--width", "0.25", "--dataset", "synthetic", "--train-subset", "100",
        "--test-subset", "100", "--epochs", "1", "--batch-size", "50", "--quiet"]
TINY_ATTACK = ["--attack-epochs", "1", "--decoder-width", "8", "--aux-samples", "50", "--victims", "16"]


def only_run_id(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("runs").experiment_id])
    return client, run.info.run_id


def test_privacy_command_logs_scores_and_picture_to_the_same_run(tmp_path):
    assert cli(["run", *TINY, "--save-model"], tmp_path).returncode == 0
    client, run_id = only_run_id(tmp_path)
    out = cli(["privacy", "--run", run_id, *TINY_ATTACK, "--control"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "attack: ssim" in out.stdout and "shuffled-pairs control: ssim" in out.stdout
    run = client.get_run(run_id)
    for name in ("mse", "psnr", "ssim", "shuffled_mse", "shuffled_psnr", "shuffled_ssim"):
        assert math.isfinite(run.data.metrics[f"privacy/{name}"])
    assert 0 < run.data.metrics["privacy/psnr"] and -1 <= run.data.metrics["privacy/ssim"] <= 1
    assert run.data.tags["privacy.epochs"] == "1" and run.data.tags["privacy.victims"] == "16"
    assert run.data.tags["privacy.git_commit"]
    assert run.data.metrics[names.FINAL_TEST_ACC] >= 0  # the training record is untouched
    (artifact,) = client.list_artifacts(run_id, "privacy")
    assert artifact.path == "privacy/reconstructions.png"
    picture = Image.open(client.download_artifacts(run_id, artifact.path, str(tmp_path)))
    assert picture.format == "PNG" and picture.size[0] > picture.size[1] > 0


def test_run_without_weights_is_one_line_exit_2(tmp_path):
    assert cli(["run", *TINY], tmp_path).returncode == 0
    _, run_id = only_run_id(tmp_path)
    out = cli(["privacy", "--run", run_id, *TINY_ATTACK], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: run {run_id} has no weights/client.pt: rerun with --save-model"]
    unknown = cli(["privacy", "--run", "0123456789abcdef", *TINY_ATTACK], tmp_path)
    assert unknown.returncode == 2
    (line,) = unknown.stderr.strip().splitlines()
    assert "run 0123456789abcdef: not found" in line


def test_missing_store_is_exit_2_and_writes_nothing(tmp_path):
    out = cli(["privacy", "--run", "abc", *TINY_ATTACK], tmp_path)
    assert out.returncode == 2 and "no MLflow store" in out.stderr
    assert list(tmp_path.iterdir()) == []
