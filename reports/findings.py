"""findings.md: every setting of every cell as a Markdown table, for a README or a paper draft.

Per setting: its accuracy over seeds, the difference from the cell's baseline with its 95% Welch
interval, the communication reduction, and whether that reduction counts by the headline's rule
(mean accuracy within reports.frames.TOLERANCE_PP of the baseline's). The mode counts show how long
the gate kept the client quiet. Rows: the baseline, then the largest reduction first.
"""

from __future__ import annotations

import math

import pandas as pd

from reports.frames import TOLERANCE_PP

COLUMNS = ("setting", "codec", "seeds", "accuracy, mean ± sd", "Δ accuracy, pp [95% CI]", "comm. reduction",
           f"within {TOLERANCE_PP:g} pp", "epochs FULL / FORWARD / CACHED")


def markdown(settings: pd.DataFrame, cells: pd.DataFrame) -> str:
    """One section per cell, titled by the cell, with one row per setting."""
    parts = []
    for cell in cells.itertuples(index=False):
        group = settings[settings["study"] == cell.study]
        group = group.sort_values(["baseline", "comm_x"], ascending=False)
        lines = [f"### {cell.title}", "", _row(COLUMNS), _row(["---"] * len(COLUMNS))]
        lines += [_row(_cells(s)) for s in group.itertuples(index=False)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _cells(s) -> list[str]:
    acc = f"{s.acc:.2%}" if math.isnan(s.acc_std) else f"{s.acc:.2%} ± {s.acc_std * 100:.2f}"
    if s.baseline:
        delta, within = "reference", "reference"
    else:
        ci = "" if math.isnan(s.delta_ci_low) else f" [{s.delta_ci_low:+.2f}, {s.delta_ci_high:+.2f}]"
        delta, within = f"{s.delta_pp:+.2f}{ci}", "yes" if s.within else "no"
    modes = " / ".join(f"{getattr(s, f'{m}_epochs'):.3g}" for m in ("full", "forward", "cached"))
    return [s.setting, s.codec, str(s.seeds), acc, delta, f"{s.comm_x:.2f}x", within, modes]


def _row(values) -> str:
    return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"
