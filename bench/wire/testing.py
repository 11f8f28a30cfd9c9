"""Conformance kit for transports: `check_transport(name)` runs the transport registered as `name`
through every check in CHECKS, each raising AssertionError naming the transport on failure.

    same run  runs over the transport are the in-process runs (REFERENCE) to the byte: every
              metric but the times, and the server network fetched at the end. One run's codecs
              have arguments and state (stochastic rounding, error feedback), which must cross
              with the config; another's cache has views, regularisers and a validation slice.
              (The layouts' kit runs every layout over every transport too.)
    refusal   a frame the server refuses fails the run with RunFailed naming the frame and the
              server's reason, and the transport still closes, twice without harm.
"""

from __future__ import annotations

import dataclasses

import torch

from bench import names
from bench.config import RunConfig
from bench.engine import RunResult, train
from bench.errors import RunFailed
from bench.split import split_networks
from bench.wire import ClientEnd, Ledger
from bench.wire.transport import TRANSPORTS

REFERENCE = "inproc"
RUNS = (
    {"quant_down_args": {"rounding": "stochastic", "error_feedback": True}},
    {"cache_views": 2, "cache_mixup": 0.2, "cache_noise": 0.1, "val_fraction": 0.2},
)


def config(**overrides) -> RunConfig:
    base = dict(model="smallcnn", width=0.25, cut=2, dataset="synthetic", train_subset=100, test_subset=20,
                epochs=3, batch_size=25, policy="periodic", policy_args={"period": 3}, clients=2,
                quant_up="fp8_e4m3", quant_down="fp8_e5m2", device="cpu")
    return RunConfig(**(base | overrides))


def strip(result: RunResult) -> list[dict[str, float]]:
    """The epochs' metrics but for the times, which differ from run to run."""
    return [{k: v for k, v in e.items() if not k.startswith(names.TIME)} for e in result.epochs]


def same_run(cfg: RunConfig, name: str) -> None:
    """Run `cfg` over transport `name` and in process: the same metrics and server network."""
    reference = train(dataclasses.replace(cfg, transport=REFERENCE), progress=False)
    over = train(dataclasses.replace(cfg, transport=name), progress=False)
    assert strip(over) == strip(reference), f"transport {name!r}: the run's metrics are not the in-process run's"
    trained = reference.server.state_dict()
    assert all(torch.equal(t.cpu(), trained[k].cpu()) for k, t in over.server.state_dict().items()), (
        f"transport {name!r}: the server network is not the in-process run's")


def check_same_run(name: str) -> None:
    for options in RUNS:
        same_run(config(**options), name)


def check_refusal(name: str) -> None:
    cfg = config()
    ds = cfg.load_data()
    _, server_net = split_networks(cfg, ds.in_channels, ds.num_classes)
    transport = TRANSPORTS.get(name)(cfg, ds.in_channels, ds.num_classes, server_net)
    expected = "the server refused a CACHED frame: client 0 has 0 cached batches, asked for batch 0"
    failure = None
    try:
        ClientEnd(0, cfg, transport, Ledger(cfg.clients), ds.num_classes).cached_step(0.1, index=0)
    except Exception as exc:  # whatever escapes is what the check reports
        failure = exc
    finally:
        transport.close()
    transport.close()
    assert isinstance(failure, RunFailed) and str(failure) == expected, (
        f"transport {name!r}: a refused frame ended in {type(failure).__name__} ({failure}), "
        f"not RunFailed ({expected})")


CHECKS = (check_same_run, check_refusal)


def check_transport(name: str) -> None:
    """Run every check in CHECKS on the transport registered as `name`."""
    for check in CHECKS:
        check(name)
