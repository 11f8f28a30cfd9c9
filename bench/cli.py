"""`python -m bench ...`: argument parsing and exit codes only; the work lives in the modules.

Exit codes: 0 done, 1 a run failed (recorded as FAILED) or a store failed, 2 bad input (nothing written).
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

from bench import config, names
from bench.config import RunConfig
from bench.errors import RunFailed, StoreFault, UsageError

# RunConfig fields that get their own, hand-written flag.
_SPECIAL = {"policy_args", "quant_up_args", "quant_down_args", "lr_milestones", "data_dir"}

def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for plugin in getattr(args, "plugin", None) or []:
            from bench.plugins import load_plugin

            load_plugin(plugin)
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"error: run failed: {exc}", file=sys.stderr)
        return 1
    except StoreFault as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    from bench import spec

    parser = argparse.ArgumentParser(prog="python -m bench", description="splitbench: split learning, measured.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train one split model and log it to MLflow")
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
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="the server side of one run, for `bench run --connect` (needs $SPLITBENCH_TOKEN)")
    serve.add_argument("--listen", default="127.0.0.1:7707", metavar="HOST:PORT",
                       help="where to listen (default 127.0.0.1:7707; port 0: any free port, printed)")
    serve.add_argument("--max-frame-mb", type=float, default=1024, help="larger frames are refused (default 1024)")
    serve.add_argument("--tls-cert", default=None, metavar="FILE",
                       help="speak TLS (1.2 or later) with this certificate chain (PEM); needs --tls-key")
    serve.add_argument("--tls-key", default=None, metavar="FILE", help="the private key of --tls-cert (PEM)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow --listen on an address other than loopback without TLS (warns)")
    serve.add_argument("--plugin", action="append", default=[], help="a plugin the run uses (repeatable)")
    serve.set_defaults(func=cmd_serve)

    priv = sub.add_parser("privacy", help="model-inversion attack on a logged run; scores go to that run")
    add_privacy_flags(priv)
    priv.set_defaults(func=cmd_privacy)

    sweep = sub.add_parser("sweep", help="Optuna studies over a spec's cells; every trial an MLflow run")
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
                       help="a .py file or module that registers policies, codecs or transports (repeatable)")
    add_system_metrics_flag(sweep)
    sweep.add_argument("--plan", action="store_true",
                       help="print the cells, trials, epochs and an estimate of device-hours; run and write nothing")
    sweep.set_defaults(func=cmd_sweep)

    dash = sub.add_parser("dashboard", help="optuna-dashboard on a sweep's Optuna storage, on 127.0.0.1")
    dash.add_argument("--storage", default=None, metavar="URL",
                      help="Optuna storage, as for `sweep` (default: $OPTUNA_STORAGE, then sqlite:///optuna.db)")
    dash.add_argument("--port", type=int, default=None,
                      help="port on 127.0.0.1 (default 8080; 0: any free port, printed)")
    dash.set_defaults(func=cmd_dashboard)

    store = sub.add_parser("store", help="check or repair an MLflow or Optuna store")
    store.add_argument("action", choices=["check", "repair"],
                       help="check: say whether the store is usable; repair: fix an interrupted upgrade, keeping every run")
    store.add_argument("uri", metavar="URI", help="sqlite:///PATH or a database URL, e.g. sqlite:///mlflow.db")
    store.set_defaults(func=cmd_store)

    lst = sub.add_parser("list", help="every policy, codec, cache layout and transport, with where it came from")
    lst.add_argument("--plugin", action="append", metavar="FILE_OR_MODULE",
                     help="a .py file or module that registers policies, codecs or transports, loaded first (repeatable)")
    lst.set_defaults(func=cmd_list)
    return parser


def add_system_metrics_flag(parser: argparse.ArgumentParser) -> None:
    from bench.tracking import SYSTEM_METRICS_INTERVAL_S

    parser.add_argument("--no-system-metrics", dest="system_metrics", action="store_false",
                        help="do not record the machine's CPU, memory, disk, network and GPU load in each run "
                             f"(MLflow's system/* metrics, sampled every {SYSTEM_METRICS_INTERVAL_S:g} s)")


def system_metrics_s(args: argparse.Namespace) -> float | None:
    from bench.tracking import SYSTEM_METRICS_INTERVAL_S

    return SYSTEM_METRICS_INTERVAL_S if args.system_metrics else None


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
                        help="a .py file or module that registers policies, codecs or transports (repeatable)")


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


def cmd_run(args: argparse.Namespace) -> int:
    from bench import record, tracking
    from bench.console import EpochPrinter, progress_bar

    seeds = seeds_from_args(args)
    cfg = config_from_args(args)
    if args.connect:
        if args.transport == "inproc":
            raise UsageError("connect: a server at HOST:PORT is reached over tcp, not --transport inproc")
        if len(seeds) > 1:
            raise UsageError("seeds: `bench serve` serves one run, so --connect takes a single seed")
        cfg = dataclasses.replace(cfg, transport="tcp")
        host, port = _address("connect", args.connect)
        token = _token()
        tls = _client_tls(host, args)
    elif args.tls_ca or args.insecure:
        raise UsageError(f"{'tls-ca' if args.tls_ca else 'insecure'}: applies to --connect only")
    # everything the data set decides, checked before anything is written
    loaded = {seed: dataclasses.replace(cfg, seed=seed).load_data() for seed in seeds}
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_URI
    tracking.check_reachable(uri)
    transport = None
    if args.connect:
        from bench.wire import tcp

        ds = loaded[seeds[0]]
        transport = tcp.connect(host, port, token, cfg, ds.in_channels, ds.num_classes, tls=tls)
    name = args.run_name or f"{cfg.model}-c{cfg.cut}-{cfg.policy}-{cfg.quant_up}-{cfg.quant_down}"
    dest = record.Destination(uri, args.experiment, name, save_model=args.save_model,
                              system_metrics_s=system_metrics_s(args))

    def watch(seed: int) -> EpochPrinter:
        if len(seeds) > 1:
            print(f"seed {seed}")
        return EpochPrinter()

    with contextlib.closing(transport) if transport else contextlib.nullcontext():
        outcome = record.train_setting(
            cfg, seeds, dest, load=lambda c: loaded[c.seed], watch=watch, progress=progress_bar(args.quiet),
            started=lambda run_id: print(f"run {run_id} in experiment {args.experiment!r} at {uri}", file=sys.stderr),
            transport=transport)
    if len(seeds) > 1:
        m = outcome.final
        acc, spread = m[names.FINAL_TEST_ACC], m[names.std(names.FINAL_TEST_ACC)]
        print(f"mean over {len(seeds)} seeds: test acc {acc:.2%} ± {spread:.2%} "
              f"(sample std), activations+gradients {m[names.FINAL_COMM_BYTES] / 1e6:.2f} MB")
    print(f"runs: {tracking.runs_page(uri, args.experiment)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bench.serve import log, serve
    from bench.wire import tls

    host, port = _address("listen", args.listen)
    if args.max_frame_mb <= 0:
        raise UsageError(f"max-frame-mb: must be > 0, got {args.max_frame_mb}")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("tls-key: give --tls-cert and --tls-key together" if args.tls_cert
                         else "tls-cert: give --tls-cert and --tls-key together")
    token = _token()
    context = tls.server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    if context is None:
        tls.check_clear("listen", host, args.insecure, log)
    return serve(host, port, token, limit=int(args.max_frame_mb * 2**20), tls=context)


def _client_tls(host: str, args: argparse.Namespace):
    """The client's TLS context for --connect (--tls-ca), or None where a clear wire is allowed."""
    from bench.wire import tls

    if args.tls_ca:
        return tls.client_context(args.tls_ca)
    tls.check_clear("connect", host, args.insecure, lambda line: print(line, file=sys.stderr))
    return None


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
    from bench import spec

    if args.heartbeat < 1:
        raise UsageError(f"heartbeat: must be >= 1 second, got {args.heartbeat}")
    data_dir = args.data_dir or os.environ.get("SPLITBENCH_DATA") or None
    the_spec = spec.load(args.spec)
    if args.plan:  # before Optuna and MLflow are imported: a GPU machine with only PyTorch can plan
        from bench.plan import print_plan

        print_plan(the_spec, data_dir)
        return 0
    from bench import sweep, tracking, tuning

    target = sweep.Target(
        storage=args.storage or os.environ.get("OPTUNA_STORAGE") or tuning.DEFAULT_STORAGE,
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_URI,
        data_dir=data_dir,
        heartbeat=args.heartbeat,
        plugins=tuple(args.plugin),
        system_metrics_s=system_metrics_s(args),
    )
    workers = args.workers if args.workers is not None else len(os.sched_getaffinity(0))
    outcome = sweep.run(the_spec, target, workers=workers)
    print(f"runs: {tracking.runs_page(target.tracking_uri, the_spec.name)}")
    return outcome.code


def cmd_dashboard(args: argparse.Namespace) -> int:
    from bench import dashboard, tuning

    port = dashboard.DEFAULT_PORT if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"port: must be between 0 and 65535, got {port}")
    return dashboard.serve(args.storage or os.environ.get("OPTUNA_STORAGE") or tuning.DEFAULT_STORAGE, port)


def cmd_store(args: argparse.Namespace) -> int:
    from bench import stores

    print(stores.repair(args.uri) if args.action == "repair" else stores.describe(args.uri))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench.layouts import LAYOUTS
    from bench.wire.transport import TRANSPORTS
    from policies import POLICIES
    from quantizers import QUANTIZERS

    for registry in (POLICIES, QUANTIZERS, LAYOUTS, TRANSPORTS):
        print(f"{registry.plural}:")
        for entry in registry.entries():
            print(f"  {entry.name:24s} {entry.source}")
    return 0


def _scalar(hint):
    """int for `int | None`, and so on: the type argparse converts the flag's text to."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint
