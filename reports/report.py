"""One sweep's report: MLflow runs -> frames -> figures and tables -> reports/out/<sweep>/ -> MLflow.

Everything is read through bench.tracking (never mlflow itself) and derived from the finished
trial runs only; the files are attached to each cell's study run under `report/`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
import seaborn as sns

from bench import names, tracking
from bench.errors import UsageError
from reports import ablation, decisions, figures, findings, frames, html, noise, tables

ARTIFACT_PATH = "report"
HISTORY = (names.TEST_ACC, names.MODE, names.TOTAL_S)
# figure kind -> caption (what it shows; html adds how it was made); {margin}: the margin in pp. The
# decisions first: they are what the report is for.
CAPTIONS = {
    "decisions": "The decision per setting: its accuracy difference from the baseline in percentage points, paired "
                 "seed by seed (the mean of the per-seed differences over the seeds both have), against its "
                 "communication reduction (activations + gradients, log scale). Error bars: the paired t interval "
                 "whose ends are the one-sided 95% bounds (a 90% CI; with adaptive seeds over K looks each bound "
                 "at 5%/K, Bonferroni); a point without one has fewer than two paired seeds, so its noise is "
                 "unknown. Marker and colour: the verdict at the margin of {margin} pp, the two one-sided tests "
                 "(TOST, as statsmodels' ttost_paired): non-inferior when the lower end is above the dashed line "
                 "at -{margin} pp, inferior when the upper end is below it, undecided when the interval holds it; "
                 "shaded: more than {margin} pp below the baseline. An arrowhead: an interval running on beyond "
                 "the axes. Star: the baseline. Numbers: the settings named in the key below (with their numbers), "
                 "the largest reduction first.",
    "pareto": "Final test accuracy against bytes sent, per setting: means over seeds (colour: policy, marker: codec "
              "family up/down). No error bars: seed k of every setting shares its initial weights, data order and "
              "augmentations with seed k of the baseline, so the spread of absolute accuracy over seeds is "
              "largely common to all settings and says little about a comparison; the paired intervals are in "
              "the decisions figure. Left: activations + gradients, the paper's definition; right: everything "
              "that crossed. Line: the Pareto front of the means; star: the baseline; dotted: {margin} pp below "
              "it.",
    "flops": "Final test accuracy against the client's computation over the run (FULL = forward + backward, "
             "FORWARD = forward, CACHED = 0), means over seeds (no error bars, as in the accuracy against "
             "communication figure), and the Pareto front of the means.",
    "modes": "The mode each setting of the communication front (activations + gradients) ran in, epoch by epoch "
             "(a setting of several seeds: its first seed); the baseline first, then the front from the fewest "
             f"bytes up (at most {figures.MAX_TIMELINE_ROWS} settings).",
    "time": "Test accuracy against the modelled time to train on the cell's link: measured compute plus the "
            "link model's communication time (bytes at the link's rates, a round trip per awaited reply), summed "
            "over the epochs; the baseline and the most accurate settings on the communication front, one line "
            "per setting through the means over its seeds. Drawn for cells whose runs modelled a link.",
    "gates": "The mode each gate family ran in, epoch by epoch: per family (the policy, and each mechanism "
             "switched on beyond the paper's form of it) its best setting, the fewest bytes among its "
             "non-inferior settings at {margin} pp (else among those within {margin} pp of the baseline on "
             "means, else the most accurate), the paper's gate (loss_threshold) first; in brackets its "
             "communication reduction, paired accuracy difference and verdict. Long grey stretches are a gate "
             "keeping the client quiet.",
    "partition": "How the cell's training set is split among its clients: training samples of each class (columns) "
                 "held by each client (rows), from the baseline's partition.json (its first seed; seed k of "
                 "every setting trains on the same shards). Drawn for cells of several clients whose runs "
                 "recorded one.",
    "curves": "Test accuracy after each epoch of the baseline and of the most accurate settings on the "
              "communication front: the mean over seeds, shaded: its 95% confidence interval (t-distribution), "
              "where there are several seeds.",
}


@dataclass(frozen=True)
class Built:
    index: Path
    cells: int
    runs: int
    seconds: float


def build(uri: str, experiment: str, out: Path, *, log_artifacts: bool = True,
          margin_pp: float | None = None) -> Built:
    """Write `out`/index.html with its figures (PNG, SVG) and tables (CSV); UsageError when there is
    nothing to report (an unknown experiment, or one without finished trial runs). Verdicts are at
    `margin_pp`, by default the margin the sweep's spec gave (tag margin_pp of its study runs),
    else noise.MARGIN_PP."""
    started = time.perf_counter()
    runs = tracking.load_runs(uri, experiment, history=HISTORY)
    trials = frames.trials(runs)
    if trials.empty:
        raise UsageError(f"experiment {experiment!r} at {uri} has no finished runs ({len(runs)} runs in all)")
    history = frames.histories(runs, trials)
    margin_pp = spec_margin(runs) if margin_pp is None else margin_pp
    settings = frames.settings(trials, frames.seed_values(runs, trials), margin_pp)
    cells = frames.cells(trials)
    links = frames.links(runs, trials)
    several = set(cells.loc[cells["clients"] > 1, "study"])
    shards = {study: tracking.partition_record(uri, run_id)
              for study, run_id in frames.partition_runs(trials).items() if study in several}
    headline = tables.headline(settings, cells)
    out.mkdir(parents=True, exist_ok=True)

    page_figures, cell_files = _figures(out, experiment, cells, settings, history, links, shards, margin_pp)

    steps = ablation.frame(runs, trials, settings)
    csvs = {"headline.csv": headline, "settings.csv": settings, "trials.csv": trials, "paper.csv": tables.PAPER}
    if not steps.empty:
        csvs["ablation.csv"] = steps
    for name, frame in csvs.items():
        frame.to_csv(out / name, index=False)
    (out / "findings.md").write_text(findings.markdown(settings, cells) + ("\n" + ablation.markdown(steps) if len(steps) else ""))
    trial_runs = [r for r in runs if frames.is_trial(r["tags"])]
    unfinished = sum(r["status"] != "FINISHED" for r in trial_runs)
    repeats = sum(r["status"] == "FINISHED" and bool(r["tags"].get(names.DUPLICATE_OF)) for r in trial_runs)
    versions = f"pandas {pd.__version__}, seaborn {sns.__version__}, matplotlib {matplotlib.__version__}"
    page = html.Page(experiment, uri, cells, settings, headline, page_figures, unfinished, repeats, versions,
                     list(csvs), steps)
    html.write(page, out / "index.html")

    if log_artifacts:
        studies = {r["tags"].get(names.STUDY): r["run_id"] for r in runs if _is_study_run(r)}
        shared = [out / "index.html", out / "findings.md", *(out / name for name in csvs)]
        for study, files in cell_files.items():
            if study in studies:
                tracking.log_artifacts(uri, studies[study], files + shared, ARTIFACT_PATH)
    return Built(out / "index.html", len(cells), len(trials), time.perf_counter() - started)


def _figures(out: Path, experiment: str, cells: pd.DataFrame, settings: pd.DataFrame, history: pd.DataFrame,
             links: dict[str, str], shards: dict, margin_pp: float) -> tuple[dict, dict]:
    """Every figure of every cell, written to `out`: per study, the page's (file, width, caption) of
    each and the files written."""
    figures.setup()
    legend = figures.Legend.of(settings)
    page_figures, cell_files = {}, {}
    for cell in cells.itertuples(index=False):
        one = settings[settings["study"] == cell.study]
        page_figures[cell.study], cell_files[cell.study] = [], []
        for kind, caption in CAPTIONS.items():
            if (kind == "time" and cell.study not in links) or (kind == "partition" and not shards.get(cell.study)):
                continue
            fig = (figures.time_to_accuracy(one, history, links[cell.study], cell.title) if kind == "time"
                   else figures.partition(shards[cell.study], cell.title) if kind == "partition"
                   else _draw(kind, one, history, legend, cell.title))
            caption = caption.format(margin=f"{margin_pp:g}")
            # Shown at 100 px an inch whatever its size, so that every figure's text looks the same size.
            width = round(fig.get_figwidth() * 100)
            stem = out / f"{html.anchor(cell.study).removeprefix('cell-')}-{kind}"
            paths = figures.save(fig, stem, _description(experiment, cell))
            page_figures[cell.study].append((paths[0].name, width, caption))
            cell_files[cell.study] += paths
    return page_figures, cell_files


def spec_margin(runs: list[dict]) -> float:
    """The margin a sweep's study runs were tagged with (the spec's margin_pp), else noise.MARGIN_PP."""
    tagged = {float(r["tags"][names.MARGIN_PP]) for r in runs if _is_study_run(r) and names.MARGIN_PP in r["tags"]}
    return max(tagged) if tagged else noise.MARGIN_PP


def _is_study_run(run: dict) -> bool:
    return run["tags"].get(names.ROLE) == names.STUDY_ROLE


def _draw(kind: str, cell: pd.DataFrame, history: pd.DataFrame, legend: figures.Legend, title: str):
    if kind == "decisions":
        return decisions.decisions(cell, title)
    if kind == "pareto":
        return figures.pareto(cell, legend, title)
    if kind == "flops":
        return figures.flops(cell, legend, title)
    if kind == "modes":
        return figures.modes(cell, history, title)
    if kind == "gates":
        return figures.gates(cell, history, title)
    return figures.curves(cell, history, title)


def _description(experiment: str, cell) -> str:
    """How a figure was made, for its PNG/SVG metadata (the page says it in the caption)."""
    return (f"splitbench sweep {experiment}, study {cell.study}: {cell.title}. Data: {cell.data_source}; "
            f"seeds: {cell.seeds}; device: {cell.device}; {cell.versions}; git commit {cell.git_commit}")
