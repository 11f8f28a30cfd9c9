"""The headline table (PAPER.md's metric, per cell) and the paper's published figures beside it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.noise import NON_INFERIOR


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


# The settings columns copied, as R_<column>, from the setting picked for reduction R.
PICKED = {"setting": "setting", "codec": "codec", "paired_delta_pp": "paired_delta_pp",
          "paired_ci_low": "paired_ci_low", "paired_ci_high": "paired_ci_high", "verdict": "verdict",
          "seeds": "paired_seeds"}
# ... and as R_mean_rule_<column> from the setting PAPER.md's rule picks (mean within the margin).
PICKED_BY_MEANS = {"setting": "setting", "codec": "codec", "delta_pp": "delta_pp", "verdict": "verdict"}
NUMBERS = {"paired_delta_pp", "paired_ci_low", "paired_ci_high", "seeds", "delta_pp"}  # NaN when none is picked


def headline(settings: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the baseline, and for each reduction R in REDUCTIONS the largest one whose
    paired verdict is non-inferior at the margin, beside the largest by PAPER.md's rule (mean
    accuracy within the margin), for comparison with the paper.

    Columns: study, title, margin_pp, baseline_acc, baseline_acc_std, baseline_seeds,
    baseline_ci_low, baseline_ci_high (95% CI of its mean accuracy, NaN for one seed), then per
    reduction R: R_x, R_setting, R_codec, R_paired_delta_pp, R_paired_ci_low, R_paired_ci_high (the
    one-sided bounds of the paired difference), R_verdict, R_seeds (paired seeds) for the
    non-inferior rule (NaN / "" where no setting is non-inferior), and R_mean_rule_x,
    R_mean_rule_setting, R_mean_rule_codec, R_mean_rule_delta_pp, R_mean_rule_verdict for the rule on
    means; then
    paper_comm, paper_compute (the paper's figure for this model and client count, else "") and
    differences (how the cell's setup differs from the paper's; "" when it does not).
    """
    rows = []
    for cell in cells.itertuples(index=False):
        group = settings[settings["study"] == cell.study]
        base = group[group["baseline"]]
        row = {"study": cell.study, "title": cell.title,
               "margin_pp": group["margin_pp"].iloc[0] if len(group) else np.nan,
               "baseline_acc": np.nan, "baseline_acc_std": np.nan,
               "baseline_seeds": 0, "baseline_ci_low": np.nan, "baseline_ci_high": np.nan}
        if len(base):
            b = base.iloc[0]
            row |= {"baseline_acc": b["acc"], "baseline_acc_std": b["acc_std"], "baseline_seeds": int(b["seeds"]),
                    "baseline_ci_low": b["acc_ci_low"], "baseline_ci_high": b["acc_ci_high"]}
        others = group[~group["baseline"]]
        for name, (factor, _) in REDUCTIONS.items():
            row |= _picked(f"{name}_", factor, others[others["verdict"] == NON_INFERIOR], PICKED)
            row |= _picked(f"{name}_mean_rule_", factor, others[others["within"]], PICKED_BY_MEANS)
        row["paper_comm"], row["paper_compute"] = paper_figures(cell.model, cell.clients)
        row["differences"] = differences(cell)
        rows.append(row)
    return pd.DataFrame(rows)


def _picked(prefix: str, factor: str, candidates: pd.DataFrame, columns: dict[str, str]) -> dict:
    """`prefix`x and `prefix`<name> of the candidate with the largest `factor` (the most accurate
    among equals); NaN and "" when there is none."""
    best = candidates.sort_values([factor, "acc"], ascending=False).head(1)
    if not len(best):
        return {f"{prefix}x": np.nan} | {f"{prefix}{name}": np.nan if name in NUMBERS else ""
                                          for name in columns}
    b = best.iloc[0]
    return {f"{prefix}x": b[factor]} | {f"{prefix}{name}": b[col] for name, col in columns.items()}


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
