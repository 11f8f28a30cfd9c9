"""`python -m bench ...`: argument parsing and exit codes only; the work lives in the modules.

Exit codes: 0 done, 1 a run failed (recorded as FAILED), 2 bad input (nothing written).
The only module that reads argv and the environment (SPLITBENCH_DATA, MLFLOW_TRACKING_URI,
OPTUNA_STORAGE, SPLITBENCH_TOKEN).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import typing

from bench.config import RunConfig
from bench.errors import RunFailed, UsageError

# RunConfig fields that get their own, hand-written flag.
_SPECIAL = {"policy_args", "lr_milestones", "data_dir"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for plugin in getattr(args, "plugin", None) or []:
            from bench.registry import load_plugin

            load_plugin(plugin)
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"error: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="splitbench: split learning, measured.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train one split model and log it to MLflow")
    add_config_flags(run)
    run.add_argument("--experiment", default="runs", help="MLflow experiment name (default: runs)")
    run.add_argument("--run-name", default=None, help="MLflow run name (default: model/policy/codecs)")
    run.add_argument("--save-model", action="store_true", help="log client and server weights as artifacts")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--connect", default=None, metavar="HOST:PORT",
                     help="the server side runs in `bench serve` at HOST:PORT (implies --transport tcp; "
                          "both sides hold the same $SPLITBENCH_TOKEN)")
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="the server side of one run, for `bench run --connect` (needs $SPLITBENCH_TOKEN)")
    serve.add_argument("--listen", default="127.0.0.1:7707", metavar="HOST:PORT",
                       help="where to listen (default 127.0.0.1:7707; port 0: any free port, printed)")
    serve.add_argument("--max-frame-mb", type=float, default=1024, help="larger frames are refused (default 1024)")
    serve.add_argument("--plugin", action="append", default=[], help="a plugin the run uses (repeatable)")
    serve.set_defaults(func=cmd_serve)

    priv = sub.add_parser("privacy", help="model-inversion attack on a logged run; scores go to that run")
    add_privacy_flags(priv)
    priv.set_defaults(func=cmd_privacy)

    sweep = sub.add_parser("sweep", help="Optuna studies over a spec's cells; every trial an MLflow run")
    sweep.add_argument("--spec", required=True, metavar="NAME_OR_PATH",
                       help="a spec shipped in bench/sweeps/ (smoke, quick, paper) or a .toml file")
    sweep.add_argument("--storage", default=None, metavar="URL",
                       help="Optuna storage: an SQLAlchemy URL (postgresql://...) or journal:PATH "
                            "(default: $OPTUNA_STORAGE, then sqlite:///optuna.db)")
    sweep.add_argument("--workers", type=int, default=1, help="worker processes on this machine, one thread each")
    sweep.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                       help="a running trial beats this often; after 3 missed beats another worker retries it")
    sweep.add_argument("--data-dir", default=None, help="data folder (default: $SPLITBENCH_DATA, then ./data)")
    sweep.add_argument("--plugin", action="append", default=[], help="a plugin .py file or module (repeatable)")
    sweep.set_defaults(func=cmd_sweep)

    lst = sub.add_parser("list", help="every policy and codec, with where it came from")
    lst.add_argument("--plugin", action="append", help="a plugin .py file or module to load first (repeatable)")
    lst.set_defaults(func=cmd_list)
    return parser


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, named after it (--batch-size for batch_size)."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if f.name in _SPECIAL:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _scalar(hints[f.name])
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"default {f.default}")
        else:
            parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper(), help=f"default {f.default}")
    parser.add_argument("--data-dir", default=None, help="data folder (default: $SPLITBENCH_DATA, then ./data)")
    parser.add_argument("--lr-milestones", default=None, help="epochs where lr is multiplied by lr-gamma, e.g. 60,120,160")
    parser.add_argument("--policy-arg", action="append", default=[], metavar="K=V", help="a policy parameter (repeatable)")
    parser.add_argument("--plugin", action="append", default=[], help="a plugin .py file or module (repeatable)")


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
    pairs = []
    for item in args.policy_arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"policy-arg: expected K=V, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    kwargs["policy_args"] = tuple(pairs)
    return RunConfig(**kwargs)


def cmd_run(args: argparse.Namespace) -> int:
    from bench import tracking
    from bench.console import EpochPrinter, Tee
    from bench.engine import resolve_device, train
    from bench.wire import tcp

    cfg = config_from_args(args)
    if args.connect:
        if args.transport == "inproc":
            raise UsageError("connect: a server at HOST:PORT is reached over tcp, not --transport inproc")
        cfg = dataclasses.replace(cfg, transport="tcp")
        host, port = _address("connect", args.connect)
        token = _token()
    device = resolve_device(cfg.device)
    ds = cfg.load_data()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_URI
    tracking.check_reachable(uri)
    transport = None
    if args.connect:
        transport = tcp.connect(host, port, token, cfg, ds.in_channels, ds.num_classes)
    name = args.run_name or f"{cfg.model}-c{cfg.cut}-{cfg.policy}-{cfg.quant_up}-{cfg.quant_down}"
    tags = tracking.provenance(str(device), cfg.seed) | {"data_source": ds.source}
    with contextlib.closing(transport) if transport else contextlib.nullcontext(), \
            tracking.MlflowRun(uri, args.experiment, name, tags=tags) as run:
        run.log_config(cfg.to_params(), dataclasses.asdict(cfg))
        print(f"run {run.run_id} in experiment {args.experiment!r} at {uri}", file=sys.stderr)
        result = train(cfg, Tee([EpochPrinter(), run]), dataset=ds, progress=not args.quiet, transport=transport)
        if args.save_model:
            run.log_weights({"client": result.client, "server": result.server})
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bench.serve import serve

    host, port = _address("listen", args.listen)
    if args.max_frame_mb <= 0:
        raise UsageError(f"max-frame-mb: must be > 0, got {args.max_frame_mb}")
    return serve(host, port, _token(), limit=int(args.max_frame_mb * 2**20))


def _address(flag: str, text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{flag}: expected HOST:PORT (e.g. 127.0.0.1:7707), got {text!r}")
    return host, int(port)


def _token() -> str:
    from bench.wire.tcp import TOKEN_ENV

    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise UsageError(f"{TOKEN_ENV}: set it to a shared secret, the same for `bench serve` and `bench run --connect`")
    return token


def cmd_privacy(args: argparse.Namespace) -> int:
    from bench import privacy, tracking

    settings = privacy.AttackSettings(
        epochs=args.attack_epochs, width=args.decoder_width, batch_size=args.attack_batch_size, lr=args.attack_lr,
        aux_samples=args.aux_samples, victims=args.victims, seed=args.attack_seed, device=args.device,
    )
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_URI
    tracking.check_reachable(uri)
    data_dir = args.data_dir or os.environ.get("SPLITBENCH_DATA") or None
    result, control = privacy.score_run(uri, args.run, settings, data_dir=data_dir, control=args.control)
    for label, r in (("attack", result), ("shuffled-pairs control", control)):
        if r is not None:
            print(f"{label}: ssim {r.ssim:.4f}  psnr {r.psnr:.2f} dB  mse {r.mse:.5f}")
    print(f"logged privacy/* metrics and privacy/reconstructions.png to run {args.run}", file=sys.stderr)
    return 0
def cmd_sweep(args: argparse.Namespace) -> int:
    from bench import spec, sweep, tracking, tuning

    if args.heartbeat < 1:
        raise UsageError(f"heartbeat: must be >= 1 second, got {args.heartbeat}")
    target = sweep.Target(
        storage=args.storage or os.environ.get("OPTUNA_STORAGE") or tuning.DEFAULT_STORAGE,
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_URI,
        data_dir=args.data_dir or os.environ.get("SPLITBENCH_DATA") or None,
        heartbeat=args.heartbeat,
        plugins=tuple(args.plugin),
    )
    return sweep.run(spec.load(args.spec), target, workers=args.workers).code


def cmd_list(args: argparse.Namespace) -> int:
    from policies import POLICIES
    from quantizers import QUANTIZERS

    for registry in (POLICIES, QUANTIZERS):
        print(f"{registry.kind}s:")
        for entry in registry.entries():
            print(f"  {entry.name:24s} {entry.source}")
    return 0


def _scalar(hint):
    """int for `int | None`, and so on: the type argparse converts the flag's text to."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint
