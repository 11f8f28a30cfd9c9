"""Console output of a run: one row per epoch, printed above the progress bar on a terminal.

Redirected to a file or a pipe, a run prints its rows and nothing else: a bar redrawn with carriage
returns would fill a log with hundreds of lines per epoch.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from bench import names
from bench.text_table import print_table
from policies import Mode


def progress_bar(quiet: bool, stream=None) -> bool:
    """Whether a run draws its progress bar: not when asked to be quiet, and only on a terminal."""
    stream = stream or sys.stderr
    return not quiet and stream.isatty()


class EpochPrinter:
    """A Sink printing `epoch mode loss acc MB-up MB-down s` rows."""

    def __init__(self):
        self.header_done = False

    def log_epoch(self, epoch: int, m: dict[str, float]) -> None:
        if not self.header_done:
            tqdm.write(f"{'epoch':>5} {'mode':>8} {'loss':>8} {'acc':>7} {'MB up':>9} {'MB down':>9} {'MB sync':>9} {'s':>7}")
            self.header_done = True
        tqdm.write(
            f"{epoch:>5} {Mode(int(m[names.MODE])).name:>8} {m[names.TRAIN_LOSS]:>8.4f} {_acc(m):>7} "
            f"{m[names.comm('up')] / 1e6:>9.2f} {m[names.comm('down')] / 1e6:>9.2f} "
            f"{m[names.comm('sync')] / 1e6:>9.2f} {m[names.EPOCH_S]:>7.1f}"
        )

    def log_final(self, m: dict[str, float]) -> None:
        tqdm.write(
            f"final: test acc {m[names.FINAL_TEST_ACC]:.2%}, activations+gradients "
            f"{m[names.FINAL_COMM_BYTES] / 1e6:.2f} MB, everything {m[names.FINAL_TOTAL_BYTES] / 1e6:.2f} MB, "
            f"client {m[names.FINAL_CLIENT_FLOPS] / 1e9:.2f} GFLOP"
        )


class Tee:
    """Sends every record to several sinks, in order."""

    def __init__(self, sinks):
        self.sinks = sinks

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        for s in self.sinks:
            s.log_epoch(epoch, metrics)

    def log_final(self, metrics: dict[str, float]) -> None:
        for s in self.sinks:
            s.log_final(metrics)


class SweepConsole:
    """A sweep's console: a live line per worker (cell, trial, epoch), a line per ended trial, a summary.

    Fed with the workers' events (dicts: kind start / epoch / end / wait / in_flight / moved /
    duplicate). Live lines show only on a terminal; the ended trials and the summary always print.
    """

    def __init__(self, spec, target, workers: int):
        from bench.stores.lock import shown

        self.spec = spec
        self.ended = 0
        self.lines = [tqdm(total=0, position=i, bar_format="{desc}", leave=False, disable=None) for i in range(workers)]
        tqdm.write(f"sweep {spec.name}: {len(spec.cells)} cells x {spec.trials} trials x {len(spec.seeds)} seed(s), "
                   f"{workers} worker(s); "
                   f"storage {shown(target.storage)}, tracking {shown(target.tracking_uri)}")

    def handle(self, e: dict) -> None:
        head = f"w{e['worker']} {e['study']}"
        if e["kind"] == "wait":
            self.lines[e["worker"]].set_description_str(f"{head}: waiting for trials running elsewhere")
        elif e["kind"] in ("start", "epoch"):
            seed = f"seed {e['seed'] + 1}/{e['seeds']} " if e["kind"] == "epoch" and e["seeds"] > 1 else ""
            acc = "" if e.get("acc") is None else f" acc {e['acc']:.1%}"  # untested epochs (eval_every) have none
            epoch = f"{seed}epoch {e['epoch'] + 1}/{e['epochs']}{acc}" if e["kind"] == "epoch" else "starting"
            self.lines[e["worker"]].set_description_str(f"{head} trial {e['trial']} [{e['choice']}] {epoch}")
        elif e["kind"] == "in_flight":
            self.lines[e["worker"]].set_description_str(
                f"{head} trial {e['trial']} [{e['choice']}]: waiting for trial {e['of']}, which is training it")
        elif e["kind"] == "moved":
            tqdm.write(f"{head} trial {e['trial']} [{e['choice']}]: {e['reason']}; moved on")
        elif e["kind"] == "duplicate":
            tqdm.write(f"{head} trial {e['trial']} [{e['choice']}]: duplicate of trial {e['of']}, not trained")
        elif e["kind"] == "end":
            self.ended += 1
            spread = f" ± {e['acc_std']:.2%} (std over {e['seeds']} seeds)" if e.get("acc_std") is not None else ""
            result = (f"acc {e['acc']:.2%}{spread}, {e['bytes'] / 1e6:.2f} MB" if e["state"] == "COMPLETE"
                      else f"FAILED: {e['reason']}")
            tqdm.write(f"{head} trial {e['trial']} [{e['choice']}]: {result}")

    def close(self, outcome) -> None:
        for line in self.lines:
            line.close()
        rows = [("cell", "done", "failed", "running", "best acc", "Pareto min MB", "front")]
        for s in outcome.summaries:
            rows.append((s.study, str(s.done), str(s.failed), str(s.running),
                         "-" if s.best_acc is None else f"{s.best_acc:.2%}",
                         "-" if s.front_min_bytes is None else f"{s.front_min_bytes / 1e6:.3f}", str(s.front_size)))
        print_table(rows[0], rows[1:], right=True)
        state = {0: "done", 130: "interrupted", 1: "a worker crashed"}.get(outcome.code, f"exit {outcome.code}")
        print(f"{state}: {outcome.trials} trial(s) run in {outcome.seconds:.0f} s")


def _acc(m: dict[str, float]) -> str:
    """The epoch's test accuracy, or "-" for an epoch that was not tested (eval_every)."""
    return f"{m[names.TEST_ACC]:.2%}" if names.TEST_ACC in m else "-"
