"""The GPU options on the CPU: bf16 autocast trains, channels-last changes nothing but rounding,
torch.compile runs, and each is a logged param."""

import pytest
import torch

from bench import names
from bench.acceleration import Acceleration
from bench.config import RunConfig
from bench.engine import train
from bench.errors import UsageError

TINY = dict(model="smallcnn", width=0.25, cut=2, dataset="synthetic", train_subset=600, test_subset=200,
            batch_size=32, warmup_epochs=0, augment=False, device="cpu")


def test_autocast_computes_in_bf16_only_when_asked():
    layer, x = torch.nn.Linear(4, 2), torch.ones(3, 4)
    with Acceleration(torch.device("cpu"), amp="bf16").autocast():
        assert layer(x).dtype == torch.bfloat16
    with Acceleration(torch.device("cpu")).autocast():
        assert layer(x).dtype == torch.float32


def test_bf16_autocast_trains_above_chance_with_float32_at_the_cut():
    run = train(RunConfig(**TINY, epochs=2, amp="bf16"), progress=False)
    first, last = run.epochs
    assert last[names.TRAIN_LOSS] < first[names.TRAIN_LOSS] - 0.3
    assert last[names.TEST_ACC] > 0.25  # chance is 0.10; 200 test images: binomial sd 0.02
    # Activations cross the cut as float32 (4 bytes: 8 channels x 16 x 16 per image) whatever
    # autocast computed them in.
    assert first[names.comm("up")] == 600 * 8 * 16 * 16 * 4


def test_channels_last_matches_the_default_layout_within_rounding():
    small = TINY | dict(train_subset=300, test_subset=100)
    plain = train(RunConfig(**small, epochs=1), progress=False).epochs[0]
    nhwc = train(RunConfig(**small, epochs=1, channels_last=True), progress=False).epochs[0]
    assert nhwc[names.TRAIN_LOSS] == pytest.approx(plain[names.TRAIN_LOSS], rel=1e-4)
    assert nhwc[names.TEST_ACC] == pytest.approx(plain[names.TEST_ACC], abs=0.02)
    assert nhwc[names.comm("up")] == plain[names.comm("up")]


@pytest.mark.slow  # inductor compiles C++ for the CPU: minutes on a small machine
def test_compiled_networks_train_to_the_same_loss_within_rounding():
    plain = train(RunConfig(**TINY, epochs=1), progress=False).epochs[0]
    compiled = train(RunConfig(**TINY, epochs=1, compile=True), progress=False).epochs[0]
    assert compiled[names.TRAIN_LOSS] == pytest.approx(plain[names.TRAIN_LOSS], rel=1e-3)


def test_the_options_are_logged_params_and_checked():
    params = RunConfig(**TINY, amp="bf16", channels_last=True, compile=True).to_params()
    assert (params["amp"], params["channels_last"], params["compile"]) == ("bf16", True, True)
    defaults = RunConfig().to_params()
    assert (defaults["amp"], defaults["channels_last"], defaults["compile"]) == ("off", False, False)
    with pytest.raises(UsageError, match=r"^amp: unknown name 'fp16'"):
        RunConfig(amp="fp16")
