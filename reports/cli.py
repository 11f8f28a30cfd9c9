"""`python -m reports --experiment NAME [--out DIR]`: argument parsing and exit codes only.

Exit codes: 0 written; 2 bad input (an unknown experiment, or one without finished runs), 1 a store
that cannot be read; each with one line.
The only module of the package that reads the environment (MLFLOW_TRACKING_URI).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.errors import StoreFault, UsageError

DEFAULT_URI = "sqlite:///mlflow.db"  # as bench.tracking.DEFAULT_URI; not imported, to start fast


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reports",
                                     description="The comparison report of one sweep, from its MLflow runs.")
    parser.add_argument("--experiment", required=True, help="MLflow experiment = sweep name, e.g. quick")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: reports/out/<experiment>)")
    parser.add_argument("--no-artifacts", action="store_true", help="do not attach the files to the study runs")
    parser.add_argument("--margin-pp", type=float, default=None, metavar="M",
                        help="non-inferiority margin in accuracy points (default: the spec's margin_pp, else 0.5); >= 0")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="a .py file or module that registers a policy or codec the sweep used (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.margin_pp is not None and not args.margin_pp >= 0:
        print(f"error: margin_pp: must be a number >= 0, got {args.margin_pp}", file=sys.stderr)
        return 2
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    out = args.out or Path("reports") / "out" / args.experiment
    from reports.report import build  # the heavy imports, after the arguments are known to be fine

    try:
        for plugin in args.plugin:
            from bench.plugins import load_plugin

            load_plugin(plugin)
        built = build(uri, args.experiment, out, log_artifacts=not args.no_artifacts, margin_pp=args.margin_pp)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreFault as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"report of {built.runs} trials in {built.cells} cells written to {built.index} in {built.seconds:.1f} s")
    return 0
