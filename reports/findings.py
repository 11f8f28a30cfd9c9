"""findings.md: every setting of every cell as a Markdown table, for a README or a paper draft.

Per setting: its seeds (and how many of them the baseline has too), its accuracy over seeds, the
paired comparison with the cell's baseline (reports/noise.py: the mean per-seed difference, its
paired t interval, the verdict at the margin, and rho, the correlation of the two arms' per-seed
accuracies), whether its mean accuracy is within the margin (PAPER.md's rule, for comparison), the
communication reduction and the mode counts (how long the gate kept the client quiet). Rows: the
baseline, then the largest reduction first.
"""

from __future__ import annotations

import math

import pandas as pd

from reports import labels, noise
from reports.html import interval_name


def columns(margin_pp: float, interval: str) -> tuple[str, ...]:
    """The header of a cell's table; `interval` names the paired interval, e.g. "90% CI"."""
    return ("setting", "codec", "seeds (paired)", "accuracy, mean ± sd", f"Δ accuracy, pp, paired [{interval}]",
            f"verdict at {margin_pp:g} pp", "ρ", f"mean within {margin_pp:g} pp", "comm. reduction",
            "epochs FULL / FORWARD / CACHED")


def markdown(settings: pd.DataFrame, cells: pd.DataFrame) -> str:
    """A note on the method, then one section per cell, titled by the cell, with one row per setting."""
    margin = float(settings["margin_pp"].iloc[0]) if len(settings) else noise.MARGIN_PP
    parts = [f"Paired against each cell's baseline ({labels.baseline_label()}) over the seeds both have: Δ is the mean "
             f"per-seed accuracy difference, its interval the paired t interval whose ends are the one-sided 95% "
             f"bounds (90% CI; with adaptive seeds over K looks, each bound at 5%/K). Verdicts at a margin of "
             f"{margin:g} pp are the two one-sided tests (TOST, as statsmodels' ttost_paired): non-inferior, "
             f"undecided, inferior; noise unknown with fewer than 2 paired seeds. \"mean within\" is PAPER.md's "
             f"rule on means, for comparison."]
    for cell in cells.itertuples(index=False):
        group = settings[settings["study"] == cell.study]
        group = group.sort_values(["baseline", "comm_x"], ascending=False)
        looks = set(group.loc[~group["baseline"], "looks"]) or {1}
        interval = interval_name(looks.pop()) if len(looks) == 1 else "CI"
        header = columns(margin, interval)
        lines = [f"### {cell.title}", "", _row(header), _row(["---"] * len(header))]
        lines += [_row(_cells(s, interval)) for s in group.itertuples(index=False)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _cells(s, interval: str) -> list[str]:
    acc = f"{s.acc:.2%}" if math.isnan(s.acc_std) else f"{s.acc:.2%} ± {s.acc_std * 100:.2f}"
    seeds = f"{s.seeds} ({s.paired_seeds:g})"
    if s.baseline:
        delta = verdict = within = "reference"
        rho = ""
        seeds = str(s.seeds)
    else:
        delta = "n/a" if math.isnan(s.paired_delta_pp) else f"{s.paired_delta_pp:+.2f}"
        if not math.isnan(s.paired_ci_low):
            own = interval_name(s.looks)
            delta += f" [{s.paired_ci_low:+.2f}, {s.paired_ci_high:+.2f}]" + ("" if own == interval else f" {own}")
        verdict = s.verdict or "no baseline"
        rho = "" if math.isnan(s.rho) else f"{s.rho:.2f}"
        within = "yes" if s.within else "no"
    modes = " / ".join(f"{getattr(s, f'{m}_epochs'):.3g}" for m in ("full", "forward", "cached"))
    return [s.setting, s.codec, seeds, acc, delta, verdict, rho, within, f"{s.comm_x:.2f}x", modes]


def _row(values) -> str:
    return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"
