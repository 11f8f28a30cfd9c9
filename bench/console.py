"""Console output of a run: one row per epoch, printed above the progress bar."""

from __future__ import annotations

from tqdm import tqdm

from policies import Mode


class EpochPrinter:
    """A Sink printing `epoch mode loss acc MB-up MB-down s` rows."""

    def __init__(self):
        self.header_done = False

    def log_epoch(self, epoch: int, m: dict[str, float]) -> None:
        if not self.header_done:
            tqdm.write(f"{'epoch':>5} {'mode':>8} {'loss':>8} {'acc':>7} {'MB up':>9} {'MB down':>9} {'MB sync':>9} {'s':>7}")
            self.header_done = True
        tqdm.write(
            f"{epoch:>5} {Mode(int(m['mode'])).name:>8} {m['train/loss']:>8.4f} {m['test/acc']:>7.2%} "
            f"{m['comm/up_bytes'] / 1e6:>9.2f} {m['comm/down_bytes'] / 1e6:>9.2f} "
            f"{m['comm/sync_bytes'] / 1e6:>9.2f} {m['time/epoch_s']:>7.1f}"
        )

    def log_final(self, m: dict[str, float]) -> None:
        tqdm.write(
            f"final: test acc {m['final/test_acc']:.2%}, activations+gradients {m['final/comm_bytes'] / 1e6:.2f} MB, "
            f"everything {m['final/total_bytes'] / 1e6:.2f} MB, client {m['final/client_flops'] / 1e9:.2f} GFLOP"
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
