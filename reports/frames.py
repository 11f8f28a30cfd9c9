"""Runs (plain dicts from bench.tracking.load_runs) -> tidy pandas frames.

trials:    one row per FINISHED trial run: the cell, the setting (policy with its arguments,
           codec = "quant_up/quant_down"), the seed, the final metrics and the provenance tags.
cells:     one row per cell (study): its fixed fields, a title, and how its runs were made.
histories: one row per (run, metric, epoch) of the per-epoch metrics that were fetched.
settings:  one row per (cell, setting), seeds averaged, with reduction factors against the
           cell's baseline (always, fp32/fp32) and the accuracy change in percentage points.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.wire.linkmodel import LinkModel

BASELINE = ("always", "fp32", "fp32")  # policy, quant_up, quant_down: every reduction is against it
TOLERANCE_PP = 0.5  # PAPER.md's headline: the largest reduction within 0.5 pp of the baseline

# final metric -> column
FINAL = {
    "final/test_acc": "acc",
    "final/comm_bytes": "comm_bytes",
    "final/total_bytes": "total_bytes",
    "final/client_flops": "client_flops",
    "final/up_bytes": "up_bytes",
    "final/down_bytes": "down_bytes",
    "final/label_bytes": "label_bytes",
    "final/sync_bytes": "sync_bytes",
    "final/full_epochs": "full_epochs",
    "final/forward_epochs": "forward_epochs",
    "final/cached_epochs": "cached_epochs",
}
CELL = ["model", "width", "cut", "dataset", "clients", "epochs", "train_subset"]
NUMERIC = ["width", "cut", "clients", "epochs", "train_subset", "seed"]
PROVENANCE = ["git_commit", "versions", "device", "data_source"]
# What the seeds of one setting are averaged over; everything else is fixed within a cell.
SETTING = ["study", "policy", "policy_args", "setting", "quant_up", "quant_down", "codec"]


def trials(runs: list[dict]) -> pd.DataFrame:
    """One row per FINISHED trial; study runs (splitbench.role=study) and unfinished runs are left out."""
    rows = []
    for run in runs:
        tags, params = run["tags"], run["params"]
        if run["status"] != "FINISHED" or tags.get("splitbench.role") == "study":
            continue
        row = {"run_id": run["run_id"], "name": run["name"], "trial": tags.get("trial")}
        row |= {k: params.get(k) for k in CELL + ["seed", "policy", "quant_up", "quant_down"]}
        # A run logged outside a sweep has no study tag: its cell is named from its fixed fields.
        row["study"] = tags.get("study") or f"{row['model']}-c{row['cut']}-clients{row['clients']}"
        args = sorted((k.removeprefix("policy."), v) for k, v in params.items() if k.startswith("policy."))
        row["policy_args"] = ", ".join(f"{k}={v}" for k, v in args)
        row["_args"] = dict(args)
        row["codec"] = f"{row['quant_up']}/{row['quant_down']}"
        row |= {col: run["metrics"].get(name, np.nan) for name, col in FINAL.items()}
        row |= {k: tags.get(k, "unknown") for k in PROVENANCE}
        rows.append(row)
    columns = ["run_id", "name", "study", "trial", *CELL, "seed", *SETTING[1:], *FINAL.values(), *PROVENANCE]
    frame = pd.DataFrame(rows, columns=columns + ["_args"])
    frame["setting"] = setting_labels(frame["policy"], frame.pop("_args"))
    for col in NUMERIC:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")  # "None" (no subset) -> NaN
    frame["baseline"] = [(p, u, d) == BASELINE for p, u, d in
                         zip(frame["policy"], frame["quant_up"], frame["quant_down"])]
    # MLflow lists the newest run first; cells by their fields (1 client before 10), trials as enqueued.
    frame["trial"] = pd.to_numeric(frame["trial"], errors="coerce")
    return frame.sort_values([*CELL, "study", "trial", "seed"]).reset_index(drop=True)


def links(runs: list[dict], trial_frame: pd.DataFrame) -> dict[str, str]:
    """study -> the link its runs modelled (e.g. "10 Mbit/s up, 50 Mbit/s down, 20 ms RTT"), for the
    cells whose runs logged a link model (params uplink_mbit, downlink_mbit, rtt_ms)."""
    study = dict(zip(trial_frame["run_id"], trial_frame["study"]))
    out = {}
    for run in runs:
        p = run["params"]
        if run["run_id"] in study and p.get("uplink_mbit") not in (None, "None"):
            rtt = p.get("rtt_ms")
            link = LinkModel(float(p["uplink_mbit"]), float(p["downlink_mbit"]), float(rtt) if rtt not in (None, "None") else 0.0)
            out[study[run["run_id"]]] = link.name
    return out


def histories(runs: list[dict], trial_frame: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch metrics of the runs in `trial_frame`: columns run_id, study, metric, epoch, value."""
    study = dict(zip(trial_frame["run_id"], trial_frame["study"]))
    rows = [
        (run["run_id"], study[run["run_id"]], metric, int(step), value)
        for run in runs if run["run_id"] in study
        for metric, points in run["history"].items() for step, value in points
    ]
    return pd.DataFrame(rows, columns=["run_id", "study", "metric", "epoch", "value"])


def settings(trial_frame: pd.DataFrame) -> pd.DataFrame:
    """Seeds averaged per (cell, setting), with reductions against the cell's baseline.

    Columns: SETTING, baseline, seeds, run_ids and run_seeds (in one order), acc (mean), acc_std (NaN
    for one seed), the mean of each cost, comm_x / total_x / flops_x (baseline cost / cost; NaN where
    the cell has no baseline), delta_pp (accuracy minus the baseline's, percentage points) and
    within (delta_pp >= -0.5).
    """
    costs = ["comm_bytes", "total_bytes", "client_flops", "up_bytes", "down_bytes", "label_bytes", "sync_bytes",
             "full_epochs", "forward_epochs", "cached_epochs"]
    grouped = trial_frame.groupby(SETTING + ["baseline"], sort=False, dropna=False)
    out = grouped[["acc", *costs]].mean().reset_index()
    out["acc_std"] = grouped["acc"].std().to_numpy()  # pandas: NaN for a single seed
    out["seeds"] = grouped["seed"].nunique().to_numpy()
    out["run_ids"] = grouped["run_id"].agg(list).to_numpy()
    out["run_seeds"] = grouped["seed"].agg(list).to_numpy()
    base = out[out["baseline"]].set_index("study")
    for cost, factor in (("comm_bytes", "comm_x"), ("total_bytes", "total_x"), ("client_flops", "flops_x")):
        ref = out["study"].map(base[cost])
        with np.errstate(divide="ignore", invalid="ignore"):
            out[factor] = ref / out[cost]
    out["delta_pp"] = (out["acc"] - out["study"].map(base["acc"])) * 100
    # 1e-9: accuracies are fractions of a test set; exactly -0.5 pp must count as within.
    out["within"] = out["delta_pp"] >= -TOLERANCE_PP - 1e-9
    return out


def cells(trial_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per study, in the order first seen: CELL fields, title, runs, seeds, PROVENANCE, label.

    Provenance columns join the distinct values of the cell's runs with "; " (one value when the
    sweep ran from one commit on one device, as it should).
    """
    rows = []
    for study, group in trial_frame.groupby("study", sort=False):
        first = group.iloc[0]
        row = {"study": study, **{k: first[k] for k in CELL}}
        row["title"] = title(first)
        row["runs"] = len(group)
        row["seeds"] = ", ".join(str(int(s)) for s in sorted(group["seed"].dropna().unique()))
        row |= {k: "; ".join(dict.fromkeys(group[k].astype(str))) for k in PROVENANCE}
        rows.append(row)
    out = pd.DataFrame(rows, columns=["study", *CELL, "title", "runs", "seeds", *PROVENANCE])
    # label: what tells this cell from the others (the whole title when there is one cell)
    shared = shared_title(out["title"]).split(" · ")
    out["label"] = [" · ".join(p for p in t.split(" · ") if p not in shared) or t for t in out["title"]]
    return out


def setting_labels(policies: pd.Series, parsed: pd.Series) -> list[str]:
    """"policy(k=v, ...)" from each run's policy arguments (dicts), naming only the arguments that vary
    among the policy's runs, e.g. loss_threshold(threshold=0.3) when every run used
    reference=last_full; all of them when the policy ran with one set of arguments. The full
    arguments stay in the policy_args column."""
    varying = {}
    for policy, args in zip(policies, parsed):
        seen = varying.setdefault(policy, {})
        for k, v in args.items():
            seen.setdefault(k, set()).add(v)
    labels = []
    for policy, args in zip(policies, parsed):
        shown = {k: v for k, v in args.items() if len(varying[policy][k]) > 1} or args
        labels.append(policy + (f"({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else ""))
    return labels


def shared_title(titles: pd.Series) -> str:
    """The parts (" · "-separated) that every cell title shares, e.g. "smallcnn, cut 2 · cifar10"."""
    parts = [t.split(" · ") for t in titles]
    return " · ".join(p for p in parts[0] if all(p in other for other in parts)) if parts else ""


def title(row) -> str:
    """What tells cells apart, e.g. "vgg11, cut 4 · 5 clients · cifar10 · 200 epochs"."""
    model = row["model"] + ("" if row["width"] == 1 else f" width {row['width']:g}") + f", cut {row['cut']:g}"
    clients = "1 client" if row["clients"] == 1 else f"{row['clients']:g} clients"
    subset = "" if pd.isna(row["train_subset"]) else f", {row['train_subset']:g} training images"
    return f"{model} · {clients} · {row['dataset']}{subset} · {row['epochs']:g} epochs"
