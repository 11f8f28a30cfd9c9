"""Codec arguments end to end: typed and checked by RunConfig, read from --quant-up-arg and
--quant-down-arg, logged as quant_up.<arg> params, searched by sweeps."""


import optuna
import pytest

from bench import spec, tuning
from bench.parser import build_parser, config_from_args
from bench.config import RunConfig
from bench.errors import UsageError

SMOKE = spec.tomllib.loads(spec.resolve("smoke").read_text())["sweep"]


def config(*flags: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(["run", *flags]), environ={})


def test_flags_give_typed_arguments_logged_with_every_default():
    cfg = config("--quant-up", "mxfp4_e2m1", "--quant-up-arg", "block=16", "--quant-up-arg", "scale_rounding=up",
                 "--quant-down", "int8", "--quant-down-arg", "granularity=channel")
    assert cfg.quant_up_args == (("block", 16), ("scale_rounding", "up"), ("seed", 0))
    params = cfg.to_params()
    assert {k: v for k, v in params.items() if k.startswith("quant_")} == {
        "quant_up": "mxfp4_e2m1", "quant_up.block": 16, "quant_up.scale_rounding": "up",
        "quant_up.rounding": "nearest", "quant_up.seed": 0,
        "quant_down": "int8", "quant_down.granularity": "channel", "quant_down.rounding": "nearest",
        "quant_down.seed": 1,
        # the stages every codec takes (quantizers/wrappers.py), off by default
        "quant_up.error_feedback": False, "quant_up.entropy": "none",
        "quant_down.error_feedback": False, "quant_down.entropy": "none",
    }


def test_rounding_seeds_follow_the_run_seed_unless_given():
    cfg = config("--seed", "3", "--quant-up", "fp16", "--quant-down", "bf16", "--quant-down-arg", "seed=11")
    assert (cfg.quant_up_args, cfg.quant_down_args) == ((("seed", 6),), (("seed", 11),))
    assert config("--seed", "3").quant_up_args == ()  # fp32 has no seed


def test_the_codec_is_built_with_its_arguments():
    codec = config("--quant-down", "fp8_e5m2", "--quant-down-arg", "rounding=stochastic").make_codec("quant_down")
    assert (type(codec).__name__, codec.rounding) == ("FP8E5M2", "stochastic")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--quant-up", "mxfp4_e2m1", "--quant-up-arg", "block=7"], "quant_up.block: must be a positive multiple of 2, got 7"),
        (["--quant-up", "mxfp4_e2m1", "--quant-up-arg", "block=x"], "quant_up.block: expected int, got 'x'"),
        (["--quant-down", "int8", "--quant-down-arg", "granularty=channel"],
         "quant_down.granularty: unknown name 'granularty'; did you mean 'granularity'? (allowed: entropy, error_feedback, granularity, rounding, seed)"),
        (["--quant-up-arg", "block=16"], "quant_up.block: unknown name 'block' (allowed: entropy, error_feedback)"),
        (["--quant-up-arg", "entropy=gzip"], "quant_up.entropy: must be one of none, zstd, got 'gzip'"),
        (["--quant-down", "bf16", "--quant-down-arg", "rounding=up"], "quant_down.rounding: unknown name 'up'"),
        (["--quant-up-arg", "oops"], "quant-up-arg: expected K=V, got 'oops'"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_argument(flags, message):
    with pytest.raises(UsageError) as err:
        config(*flags)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def search(**table):
    return spec.parse(SMOKE | {"search": {"policies": ["periodic"]} | table}, name="x")


def test_a_spec_searches_a_codecs_declared_arguments_with_its_overrides():
    s = search(quant_up=["mxfp4_e2m1", "fp16"], quant_down=["int8"],
               codec_ranges={"mxfp4_e2m1": {"block": {"choices": [16, 32]}},
                             "fp16": {"rounding": {"choices": ["nearest", "stochastic"]}}})
    assert s.codec_space("mxfp4_e2m1") == {
        "block": spec.Range(choices=(16, 32)),
        "scale_rounding": spec.Range(choices=("floor", "up")),  # declared
    }
    assert s.codec_space("int8") == {"granularity": spec.Range(choices=("tensor", "channel"))}
    assert s.codec_space("fp16") == {"rounding": spec.Range(choices=("nearest", "stochastic"))}  # asked for
    assert s.codec_space("fp32") == {}


@pytest.mark.parametrize(
    "ranges, message",
    [
        ({"mxfp4_e2m1": {"block": {"choices": [16, 7]}}},
         "sweep.search.codec_ranges.mxfp4_e2m1.block: 7 is not allowed (block: must be a positive multiple of 2"),
        ({"mxfp4_e2m1": {"blok": {"choices": [16]}}},
         "sweep.search.codec_ranges.mxfp4_e2m1.blok: unknown name 'blok'; did you mean 'block'?"),
        ({"nvfp4": {}}, "sweep.search.codec_ranges: unknown name 'nvfp4'"),
    ],
)
def test_bad_codec_ranges_name_the_field(ranges, message):
    with pytest.raises(UsageError) as err:
        search(quant_up=["mxfp4_e2m1"], quant_down=["fp32"], codec_ranges=ranges)
    assert str(err.value).startswith(message)


def test_a_trial_chooses_codec_arguments_per_codec_and_direction():
    s = search(quant_up=["mxfp4_e2m1"], quant_down=["mxfp4_e2m1"],
               codec_ranges={"mxfp4_e2m1": {"rounding": {"choices": ["stochastic"]}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"policy": "always", "quant_up": "mxfp4_e2m1", "quant_down": "fp32"})
    trial = study.ask()
    choice = tuning.suggest(trial, s)
    assert {k for k in trial.params if k.startswith("quant_up.")} == {
        "quant_up.mxfp4_e2m1.block", "quant_up.mxfp4_e2m1.rounding", "quant_up.mxfp4_e2m1.scale_rounding"}
    assert choice["quant_down_args"] == ()
    assert "seed" not in dict(choice["quant_up_args"])  # the run's seed decides it
    cfg = s.cells[0].config(**choice)
    assert cfg.to_params()["quant_up.rounding"] == "stochastic"
    assert cfg.to_params()["quant_up.block"] in (16, 32, 64)
