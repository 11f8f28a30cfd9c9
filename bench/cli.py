"""`python -m bench ...`: what each command does with its parsed arguments, and the exit codes.

Exit codes: 0 done, 1 a run failed (recorded as FAILED) or a store failed, 2 bad input (nothing written).
With bench/parser.py (the flags), the only module that reads argv and the environment
(SPLITBENCH_DATA, MLFLOW_TRACKING_URI, OPTUNA_STORAGE, SPLITBENCH_TOKEN); the work lives in the modules.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys

from bench import names
from bench.errors import RunFailed, StoreFault, UsageError
from bench.parser import build_parser, config_from_args, seeds_from_args


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for plugin in getattr(args, "plugin", None) or []:
            from bench.plugins import load_plugin

            load_plugin(plugin)
        return COMMANDS[args.command](args)
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


def system_metrics_s(args: argparse.Namespace) -> float | None:
    from bench.tracking import SYSTEM_METRICS_INTERVAL_S

    return SYSTEM_METRICS_INTERVAL_S if args.system_metrics else None


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


COMMANDS = {"run": cmd_run, "serve": cmd_serve, "privacy": cmd_privacy, "sweep": cmd_sweep,
            "dashboard": cmd_dashboard, "store": cmd_store, "list": cmd_list}
