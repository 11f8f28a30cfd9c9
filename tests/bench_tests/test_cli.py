"""`python -m bench run` end to end: MLflow records, exit codes, and bad input that writes nothing."""

import dataclasses
import importlib.metadata
import json
import re

import pytest
import torch
from mlflow.tracking import MlflowClient

from bench import names
from bench.config import RunConfig
from policies import POLICIES
from tests.conftest import SMALL, cli, run_cli


def runs_of(tmp_path, experiment="runs"):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


def test_run_logs_params_metrics_tags_and_artifacts(tmp_path):
    """A real `python -m bench` process, with the default store in the folder it starts in."""
    out = run_cli(["run", *SMALL, "--policy", "loss_threshold", "--policy-arg", "threshold=0.02",
                   "--quant-up", "fp8_e4m3", "--quant-down", "mxfp6_e3m2", "--quant-down-arg", "block=16",
                   "--quant-down-arg", "rounding=stochastic", "--save-model"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "FULL" in out.stdout and "final: test acc" in out.stdout
    client, runs = runs_of(tmp_path)
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert run.data.params["policy"] == "loss_threshold"
    assert run.data.params["policy.threshold"] == "0.02"
    assert run.data.params["policy.reference"] == "last_full"
    assert run.data.params["quant_up"] == "fp8_e4m3"
    assert run.data.params["quant_up.rounding"] == "nearest"
    assert (run.data.params["quant_down.block"], run.data.params["quant_down.rounding"]) == ("16", "stochastic")
    assert run.data.tags["seed"] == "0" and run.data.tags["git_commit"]
    assert "torch" in run.data.tags["versions"] and run.data.tags["device"].startswith("cpu")
    modes = [m.value for m in client.get_metric_history(run.info.run_id, "mode")]
    assert modes[0] == 0 and len(modes) == 3
    ups = client.get_metric_history(run.info.run_id, names.comm("up"))
    downs = client.get_metric_history(run.info.run_id, names.comm("down"))
    assert run.data.metrics[names.FINAL_COMM_BYTES] == sum(m.value for m in ups + downs)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "weights"} <= artifacts
    weights = {a.path for a in client.list_artifacts(run.info.run_id, "weights")}
    assert weights == {"weights/client.pt", "weights/server.pt"}
    config = json.loads(open(client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))).read())
    assert config["policy_args"] == [["threshold", 0.02]]
    assert config["quant_down_args"] == [["block", 16], ["rounding", "stochastic"], ["seed", 1]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "loss_treshold"], "policy: unknown name 'loss_treshold'; did you mean 'loss_threshold'?"),
        (["--quant-up", "fp8_e4m4"], "quant_up: unknown name 'fp8_e4m4'; did you mean"),
        (["--model", "vgg12"], "model: unknown name 'vgg12'; did you mean"),
        (["--cut", "7"], "cut: must be between 1 and 6 for smallcnn, got 7"),
        (["--epochs", "0"], "epochs: must be a number >= 1, got 0"),
        (["--policy", "periodic", "--policy-arg", "period=0"], "policy.period: must be an integer >= 1"),
        (["--policy", "periodic", "--policy-arg", "perod=2"], "policy.perod: unknown name 'perod'; did you mean 'period'?"),
        (["--policy-arg", "oops"], "policy-arg: expected K=V"),
        pytest.param(["--device", "cuda"], "device: cuda is not available",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    out = cli(["run", *SMALL, *args], tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_data_set_says_where_it_looked(tmp_path):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    out = cli(["run", *SMALL, "--dataset", "cifar10", "--data-dir", str(empty)], tmp_path)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "cifar10" in line and "nothing-here" in line and "SPLITBENCH_DATA" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nothing-here"]


def test_unreachable_tracking_server_is_exit_2(tmp_path):
    out = cli(["run", *SMALL], tmp_path, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert "MLFLOW_TRACKING_URI" in line and "unreachable" in line
    assert list(tmp_path.iterdir()) == []


def test_diverging_run_is_failed_with_reason_and_exit_1(tmp_path):
    out = cli(["run", *SMALL, "--lr", "1e12", "--warmup-epochs", "0"], tmp_path)
    assert out.returncode == 1, out.stderr
    assert "run failed: train/loss is" in out.stderr
    _, (run,) = runs_of(tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"].startswith("train/loss is")


def test_list_shows_every_policy_and_codec_with_its_source(tmp_path):
    out = cli(["list"], tmp_path)
    assert out.returncode == 0
    for name in ("always", "periodic", "loss_threshold", "fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2",
                 "fp8_e4m3_unscaled", "fp8_e5m2_unscaled"):
        assert f"  {name} " in out.stdout
    assert "built-in" in out.stdout
    # Each registry under its own plural (the plural was once made by adding "s": "policys").
    assert [line for line in out.stdout.splitlines() if line.endswith(":")] == [
        "policies:", "codecs:", "layouts:", "transports:"]


CODECS = ("bf16, fp16, fp16_scaled, fp32, fp8_e4m3, fp8_e4m3_unscaled, fp8_e5m2, fp8_e5m2_unscaled, int4, int8, "
          "mxfp4_e2m1, mxfp6_e2m3, mxfp6_e3m2, mxfp8_e4m3, mxfp8_e5m2, mxint8, nvfp4, topk")
CHOICES = {
    "--model": "vgg11, vgg13, resnet18, smallcnn",
    "--dataset": "cifar10, fashion_mnist, synthetic",
    "--gating": "global, per-client",
    "--policy": "always, loss_threshold, periodic, plugged_in",  # plugged_in: an installed plugin
    "--quant-up": CODECS,
    "--quant-down": CODECS,
    "--cache-augment": "view, off",
    "--frozen-bn": "eval, train",
    "--device": "auto, cpu, cuda",
}


def test_run_help_explains_every_flag_and_lists_allowed_values(tmp_path, monkeypatch):
    """Every RunConfig flag says what it means; every choice flag lists the names registered now."""
    ep = importlib.metadata.EntryPoint("plugged_in", "splitbench_not_imported:Policy", POLICIES.group)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [ep] if group == POLICIES.group else [])
    monkeypatch.setattr(POLICIES, "_installed", None)
    out = cli(["run", "--help"], tmp_path, env={"COLUMNS": "1000"})  # one line per flag
    assert out.returncode == 0
    helps = dict(re.findall(r"^  (--[a-z-]+)(?: [A-Z_]+|, --no-[a-z-]+)?\s+(.*)$", out.stdout, re.M))
    for f in dataclasses.fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        if flag in helps:
            assert not helps[flag].startswith("(default"), f"{flag} says only its default"
    for flag, listed in CHOICES.items():
        assert f"one of: {listed}" in helps[flag], helps[flag]
    assert "(default: fp32)" in helps["--quant-up"] and "--policy-arg" in helps


def test_output_to_a_file_is_one_line_per_epoch_and_no_progress_bar(tmp_path):
    """Catches: a progress bar redrawn with carriage returns into a log file."""
    args = [a for a in SMALL if a != "--quiet"]
    out = cli(["run", *args], tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 + 3 + 1 + 1  # header, one row per epoch, the totals, the runs' address
    assert lines[-1].startswith("runs: http://127.0.0.1:5000/#/experiments/")
    assert [line.split()[:2] for line in lines[1:4]] == [["0", "FULL"], ["1", "FULL"], ["2", "FULL"]]
    assert "\r" not in out.stdout + out.stderr
    assert "epoch 0" not in out.stderr and out.stderr.splitlines()[-1].startswith("run ")
