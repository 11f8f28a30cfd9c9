"""The ablation table: what each ingredient of a cell's best feasible setting buys.

A sweep with `ablation = true` (bench/ablation.py) trains, after its search, one trial per step,
each tagged `ablation` (what the step took away, e.g. "cache_mixup: 0.2 -> 0.0") and `ablation_of`
(the trial number of the setting it ablates). A step equal to a setting already trained takes that
trial's result (tag duplicate_of) and is shown with it. Rows: the full setting first, then each step
in the order the sweep ran them, each with its seeds, reduction and paired comparison from the
settings frame (reports/frames.settings).
"""

from __future__ import annotations

import pandas as pd

from bench import names

COLUMNS = ["study", "step", "setting", "codec", "seeds", "comm_x", "paired_delta_pp", "paired_ci_low",
           "paired_ci_high", "verdict", "looks"]
FULL = "(the full setting)"


def frame(runs: list[dict], trials: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """One row per step of every ablated cell (COLUMNS); empty when the sweep ran no ablation."""
    rows = []
    by_trial = {(t.study, int(t.trial)): t.run_id for t in trials.itertuples() if pd.notna(t.trial)}
    steps = sorted((r for r in runs if r["status"] == "FINISHED" and r["tags"].get(names.ABLATION)
                    and r["tags"].get(names.ROLE) == names.TRIAL_ROLE),  # its seeds' runs carry the tag too
                   key=lambda r: int(r["tags"].get(names.TRIAL, 0)))
    studies = dict.fromkeys(r["tags"].get(names.STUDY) for r in steps)
    for study in studies:
        mine = [r for r in steps if r["tags"].get(names.STUDY) == study]
        best = by_trial.get((study, int(mine[0]["tags"][names.ABLATION_OF])))
        rows.append(_row(study, FULL, best, settings))
        for run in mine:
            tags = run["tags"]
            run_id = by_trial.get((study, int(tags[names.DUPLICATE_OF]))) if tags.get(names.DUPLICATE_OF) else run["run_id"]
            rows.append(_row(study, tags[names.ABLATION], run_id, settings))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(study: str, step: str, run_id: str | None, settings: pd.DataFrame) -> dict:
    """The settings row that counted trial run `run_id`, as an ablation row (NaN where it has none)."""
    match = settings[settings["run_ids"].map(lambda ids: run_id in ids)] if run_id else settings[:0]
    if match.empty:  # its trial did not finish
        return {"study": study, "step": step, "verdict": "not finished", "looks": 1}
    s = match.iloc[0]
    return {"study": study, "step": step} | {c: s[c] for c in COLUMNS[2:]}


def markdown(table: pd.DataFrame) -> str:
    """Each cell's ablation as a Markdown table (nothing when there is none)."""
    parts = []
    for study, group in table.groupby("study", sort=False):
        parts.append(f"### Ablation: {study}\n\nThe best non-inferior setting, then one ingredient taken away at a time.\n")
        parts.append("| step | setting | codec | seeds | comm. reduction | Δ accuracy, pp, paired [90% CI] | verdict |")
        parts.append("|---|---|---|---|---|---|---|")
        for r in group.itertuples():
            interval = (f"{r.paired_delta_pp:+.2f} [{r.paired_ci_low:+.2f}, {r.paired_ci_high:+.2f}]"
                        if pd.notna(r.paired_ci_low) else "-")
            reduction = f"{r.comm_x:.2f}x" if pd.notna(r.comm_x) else "-"
            seeds = "-" if pd.isna(r.seeds) else int(r.seeds)
            parts.append(f"| {r.step} | {r.setting} | {r.codec} | {seeds} | {reduction} | {interval} | {r.verdict} |")
        parts.append("")
    return "\n".join(parts)
