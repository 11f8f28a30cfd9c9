"""The command line's parser: every subcommand and its flags, and the RunConfig and seeds they describe.

A RunConfig flag is made from its field (bench/config.py): its name (--batch-size for batch_size),
what it means, its allowed values and its default, so that a new field is a new flag with no edit
here. bench/cli.py runs what the parsed arguments ask for.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing

from bench import config
from bench.config import RunConfig
from bench.errors import UsageError

# RunConfig fields that get their own, hand-written flag.
_SPECIAL = {"policy_args", "quant_up_args", "quant_down_args", "lr_milestones", "data_dir"}
PLUGIN_HELP = "a .py file or module that registers policies, codecs or transports"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="splitbench: split learning, measured.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub.add_parser("run", help="train one split model and log it to MLflow"))
    _add_serve(sub.add_parser("serve", help="the server side of one run, for `bench run --connect` (needs "
                                            "$SPLITBENCH_TOKEN)"))
    add_privacy_flags(sub.add_parser("privacy", help="model-inversion attack on a logged run; scores go to that run"))
    _add_sweep(sub.add_parser("sweep", help="Optuna studies over a spec's cells; every trial an MLflow run"))
    _add_dashboard(sub.add_parser("dashboard", help="optuna-dashboard on a sweep's Optuna storage, on 127.0.0.1"))
    store = sub.add_parser("store", help="check or repair an MLflow or Optuna store")
    store.add_argument("action", choices=["check", "repair"],
                       help="check: say whether the store is usable; repair: fix an interrupted upgrade, keeping every run")
    store.add_argument("uri", metavar="URI", help="sqlite:///PATH or a database URL, e.g. sqlite:///mlflow.db")
    lst = sub.add_parser("list", help="every policy, codec, cache layout and transport, with where it came from")
    lst.add_argument("--plugin", action="append", metavar="FILE_OR_MODULE",
                     help=f"{PLUGIN_HELP}, loaded first (repeatable)")
    return parser


def _add_run(run: argparse.ArgumentParser) -> None:
    add_config_flags(run)
    run.add_argument("--seeds", default=None, metavar="0,1,2",
                     help="train once per seed; one run holds the means, a nested run per seed its own (instead of --seed)")
    run.add_argument("--experiment", default="runs", help="MLflow experiment name (default: runs)")
    run.add_argument("--run-name", default=None, help="MLflow run name (default: model/policy/codecs)")
    run.add_argument("--save-model", action="store_true", help="log client and server weights as artifacts")
    run.add_argument("--quiet", action="store_true", help="no progress bar (there is none unless stderr is a terminal)")
    add_system_metrics_flag(run)
    run.add_argument("--connect", default=None, metavar="HOST:PORT",
                     help="the server side runs in `bench serve` at HOST:PORT (implies --transport tcp; "
                          "both sides hold the same $SPLITBENCH_TOKEN, which never crosses the wire)")
    run.add_argument("--tls-ca", default=None, metavar="FILE",
                     help="with --connect: speak TLS, trusting the certificates in FILE (PEM) and checking the "
                          "server's host name (needed unless HOST is a loopback address)")
    run.add_argument("--insecure", action="store_true",
                     help="with --connect: allow a clear wire to a HOST that is not a loopback address (warns)")


def _add_serve(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--listen", default="127.0.0.1:7707", metavar="HOST:PORT",
                       help="where to listen (default 127.0.0.1:7707; port 0: any free port, printed)")
    serve.add_argument("--max-frame-mb", type=float, default=1024, help="larger frames are refused (default 1024)")
    serve.add_argument("--tls-cert", default=None, metavar="FILE",
                       help="speak TLS (1.2 or later) with this certificate chain (PEM); needs --tls-key")
    serve.add_argument("--tls-key", default=None, metavar="FILE", help="the private key of --tls-cert (PEM)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow --listen on an address other than loopback without TLS (warns)")
    serve.add_argument("--plugin", action="append", default=[], help="a plugin the run uses (repeatable)")


def _add_sweep(sweep: argparse.ArgumentParser) -> None:
    from bench import spec

    sweep.add_argument("--spec", required=True, metavar="NAME_OR_PATH",
                       help=f"a spec shipped in bench/sweeps/ (one of: {', '.join(spec.shipped())}) or a .toml file")
    sweep.add_argument("--storage", default=None, metavar="URL",
                       help="Optuna storage: an SQLAlchemy URL (postgresql://...) or journal:PATH "
                            "(default: $OPTUNA_STORAGE, then sqlite:///optuna.db)")
    sweep.add_argument("--workers", type=int, default=None,
                       help="worker processes on this machine, one thread each (default: one per core)")
    sweep.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                       help="a running trial beats this often; after 3 missed beats another worker retries it "
                            "(default: %(default)s)")
    sweep.add_argument("--data-dir", default=None, help="data folder (default: $SPLITBENCH_DATA, then ./data)")
    sweep.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                       help=f"{PLUGIN_HELP} (repeatable)")
    add_system_metrics_flag(sweep)
    sweep.add_argument("--plan", action="store_true",
                       help="print the cells, trials, epochs and an estimate of device-hours; run and write nothing")


def _add_dashboard(dash: argparse.ArgumentParser) -> None:
    dash.add_argument("--storage", default=None, metavar="URL",
                      help="Optuna storage, as for `sweep` (default: $OPTUNA_STORAGE, then sqlite:///optuna.db)")
    dash.add_argument("--port", type=int, default=None,
                      help="port on 127.0.0.1 (default 8080; 0: any free port, printed)")


def add_system_metrics_flag(parser: argparse.ArgumentParser) -> None:
    from bench.tracking import SYSTEM_METRICS_INTERVAL_S

    parser.add_argument("--no-system-metrics", dest="system_metrics", action="store_false",
                        help="do not record the machine's CPU, memory, disk, network and GPU load in each run "
                             f"(MLflow's system/* metrics, sampled every {SYSTEM_METRICS_INTERVAL_S:g} s)")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, named after it (--batch-size for batch_size): what it means,
    its allowed values (registered names as installed now) and its default."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if f.name in _SPECIAL:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _scalar(hints[f.name])
        meaning = config.help_text(f.name) or f.name.replace("_", " ")
        choices = config.allowed(f.name)
        values = f"; one of: {', '.join(choices)}" if choices is not None else ""
        default = "" if f.default is None else f" (default: {f.default})"
        text = f"{meaning}{values}{default}".replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper(), help=text)
    parser.add_argument("--data-dir", default=None, help="data folder (default: $SPLITBENCH_DATA, then ./data)")
    parser.add_argument("--lr-milestones", default=None, metavar="EPOCHS",
                        help="epochs where lr is multiplied by lr-gamma, comma-separated, e.g. 60,120,160 "
                             f"(default: {','.join(map(str, RunConfig.lr_milestones))})")
    parser.add_argument("--policy-arg", action="append", default=[], metavar="K=V",
                        help="a field of the chosen policy, e.g. period=3 or threshold=0.02 (repeatable)")
    parser.add_argument("--quant-up-arg", action="append", default=[], metavar="K=V",
                        help="an argument of the up codec, e.g. block=16 or error_feedback=true (repeatable)")
    parser.add_argument("--quant-down-arg", action="append", default=[], metavar="K=V",
                        help="an argument of the down codec, e.g. rounding=stochastic or entropy=zstd (repeatable)")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                        help=f"{PLUGIN_HELP} (repeatable)")


def add_privacy_flags(parser: argparse.ArgumentParser) -> None:
    """The run to attack, one flag per AttackSettings field (with its default), where the data are."""
    from bench.privacy import AttackSettings

    d = AttackSettings()
    parser.add_argument("--run", required=True, metavar="RUN_ID", help="an MLflow run logged with --save-model")
    parser.add_argument("--attack-epochs", type=int, default=d.epochs, help=f"decoder epochs (default {d.epochs})")
    parser.add_argument("--decoder-width", type=int, default=d.width, help=f"decoder channels (default {d.width})")
    parser.add_argument("--attack-batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    parser.add_argument("--attack-lr", type=float, default=d.lr, help=f"decoder Adam lr (default {d.lr})")
    parser.add_argument("--aux-samples", type=int, default=d.aux_samples,
                        help="auxiliary test images the decoder trains on (default: all)")
    parser.add_argument("--victims", type=int, default=d.victims,
                        help=f"client training images reconstructed (default {d.victims})")
    parser.add_argument("--attack-seed", type=int, default=d.seed, help=f"default {d.seed}")
    parser.add_argument("--device", default=d.device, help=f"auto, cpu or cuda (default {d.device})")
    parser.add_argument("--data-dir", default=None,
                        help="data folder (default: $SPLITBENCH_DATA, then the one the run recorded)")
    parser.add_argument("--control", action="store_true",
                        help="also train a decoder on shuffled pairs and log its scores as privacy/shuffled_*")
    parser.add_argument("--plugin", action="append", default=[], help="a plugin the run used (repeatable)")


def config_from_args(args: argparse.Namespace, environ=os.environ) -> RunConfig:
    """The RunConfig the flags describe; unset flags keep RunConfig's defaults."""
    kwargs = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(RunConfig)
        if f.name not in _SPECIAL and getattr(args, f.name) is not None
    }
    kwargs["data_dir"] = args.data_dir or environ.get("SPLITBENCH_DATA") or None
    if args.lr_milestones is not None:
        try:
            kwargs["lr_milestones"] = tuple(int(m) for m in args.lr_milestones.split(",") if m.strip())
        except ValueError:
            raise UsageError(f"lr_milestones: expected comma-separated epochs, got {args.lr_milestones!r}") from None
    for field in ("policy_args", "quant_up_args", "quant_down_args"):
        kwargs[field] = _pairs(field.replace("_args", "-arg").replace("_", "-"), getattr(args, field[:-1]))
    return RunConfig(**kwargs)


def _pairs(flag: str, items: list[str]) -> tuple[tuple[str, str], ...]:
    """K=V flag values as (K, V) pairs, still strings (RunConfig types them)."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag}: expected K=V, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def seeds_from_args(args: argparse.Namespace) -> tuple[int, ...]:
    """--seeds 0,1,2, else --seed, else RunConfig's default seed."""
    from bench.record import check_seeds

    if args.seeds is None:
        return (args.seed if args.seed is not None else RunConfig.seed,)
    if args.seed is not None:
        raise UsageError("seeds: give --seed or --seeds, not both")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise UsageError(f"seeds: expected comma-separated integers, got {args.seeds!r}") from None
    return check_seeds("seeds", seeds)


def _scalar(hint):
    """int for `int | None`, and so on: the type argparse converts the flag's text to."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint
