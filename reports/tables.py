"""The headline table (PAPER.md's metric, per cell) and the paper's published figures beside it."""

from __future__ import annotations

import numpy as np
import pandas as pd


# Chen et al., SiPS 2021, abstract: reductions at < 0.5 pp accuracy loss, CIFAR-10, full-size models.
PAPER_SETUP = {"dataset": "cifar10", "epochs": 200, "train_images": 50_000, "width": 1.0}
PAPER = pd.DataFrame(
    [
        ("vgg11, vgg13, resnet18", 1, "1.64x-106.7x", "2.86x-32.1x", "range over the three models"),
        ("vgg11", 5, "11.9x", "not published", ""),
        ("vgg11", 10, "11.3x", "not published", ""),
    ],
    columns=["models", "clients", "comm_reduction", "compute_reduction", "note"],
)
# reduction column -> (cost it divides, what it is called)
REDUCTIONS = {
    "comm": ("comm_x", "communication, activations + gradients"),
    "total": ("total_x", "communication, everything that crossed"),
    "flops": ("flops_x", "client computation"),
}


# The settings columns copied, as R_<column>, from the setting picked for reduction R; the words and the numbers.
PICKED_WORDS = ("setting", "codec", "verdict")
PICKED_NUMBERS = ("delta_pp", "delta_ci_low", "delta_ci_high")


def headline(settings: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the baseline, and for each reduction in REDUCTIONS the largest one among the
    settings whose MEAN accuracy is within reports.frames.TOLERANCE_PP of the baseline's, with the
    setting and codec that achieved it and how sure the difference is.

    Columns: study, title, baseline_acc, baseline_acc_std, baseline_seeds, baseline_ci_low,
    baseline_ci_high (95% CI of its mean accuracy, NaN for one seed), then per reduction R: R_x,
    R_setting, R_codec, R_delta_pp (accuracy minus the baseline's, pp), R_delta_ci_low,
    R_delta_ci_high (its 95% Welch interval; NaN with one seed on either side) and R_verdict ("within
    the noise", "real loss", "real gain", "noise unknown", or "reference" when the baseline itself
    is best) (NaN / "" where the cell has no finished baseline), then paper_comm, paper_compute (the
    paper's figure for this model and client count, else "") and differences (how the cell's setup
    differs from the paper's; "" when it does not), for every cell.
    """
    rows = []
    for cell in cells.itertuples(index=False):
        group = settings[settings["study"] == cell.study]
        base = group[group["baseline"]]
        row = {"study": cell.study, "title": cell.title, "baseline_acc": np.nan, "baseline_acc_std": np.nan,
               "baseline_seeds": 0, "baseline_ci_low": np.nan, "baseline_ci_high": np.nan}
        if len(base):
            b = base.iloc[0]
            row |= {"baseline_acc": b["acc"], "baseline_acc_std": b["acc_std"], "baseline_seeds": int(b["seeds"]),
                    "baseline_ci_low": b["acc_ci_low"], "baseline_ci_high": b["acc_ci_high"]}
        within = group[group["within"]]
        for name, (factor, _) in REDUCTIONS.items():
            best = within.sort_values([factor, "acc"], ascending=False).head(1)
            row |= {f"{name}_x": np.nan} | {f"{name}_{c}": "" for c in PICKED_WORDS}
            row |= {f"{name}_{c}": np.nan for c in PICKED_NUMBERS}
            if len(best):
                b = best.iloc[0]
                row |= {f"{name}_x": b[factor]} | {f"{name}_{c}": b[c] for c in PICKED_WORDS + PICKED_NUMBERS}
        row["paper_comm"], row["paper_compute"] = paper_figures(cell.model, cell.clients)
        row["differences"] = differences(cell)
        rows.append(row)
    return pd.DataFrame(rows)


def paper_figures(model: str, clients: int) -> tuple[str, str]:
    """The paper's (communication, computation) reduction for this model and client count, else ("", "")."""
    for entry in PAPER.itertuples(index=False):
        if model in entry.models.split(", ") and clients == entry.clients:
            return entry.comm_reduction, entry.compute_reduction
    return "", ""


def differences(cell) -> str:
    """How a cell's setup differs from the paper's, e.g. "synthetic data, 3 epochs (paper: 200)"; "" if not."""
    out = []
    if cell.dataset != PAPER_SETUP["dataset"]:
        out.append(f"{cell.dataset} data (paper: CIFAR-10)")
    if cell.epochs != PAPER_SETUP["epochs"]:
        out.append(f"{cell.epochs:g} epochs (paper: {PAPER_SETUP['epochs']})")
    if not pd.isna(cell.train_subset) and cell.train_subset < PAPER_SETUP["train_images"]:
        out.append(f"{cell.train_subset:g} training images (paper: {PAPER_SETUP['train_images']:,})")
    if cell.width != PAPER_SETUP["width"]:
        out.append(f"width x{cell.width:g} (paper: full width)")
    return "; ".join(out)
