"""Seaborn figures of one cell; each function returns a matplotlib Figure and draws nothing else.

Colours and markers are fixed across the whole sweep by a Legend (policy -> colour, codec ->
marker), so that one policy looks the same in every cell and every figure; the decisions figure
(reports/decisions.py) colours and shapes its points by verdict instead.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from bench import names  # noqa: E402
from reports import noise  # noqa: E402
from reports.codecs import family_label, short_label  # noqa: E402
from reports.frames import BASELINE, best_of_families  # noqa: E402
from reports.labels import baseline_label, codec_label  # noqa: E402
from reports.pareto import front  # noqa: E402

MB, GFLOP = 1e6, 1e9
MODES = {0: ("FULL", "#1b4f8a"), 1: ("FORWARD", "#f2a541"), 2: ("CACHED", "#dcdcdc")}
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "<", ">", "p", "h"]
FRONT_STYLE = dict(color="0.25", lw=1.3, zorder=1)
CODEC_HEADING = "codec family (up/down)"
MAX_CURVES = 4  # besides the baseline: more lines than this are unreadable
MAX_TIMELINE_ROWS = 16
TIMELINE_LABEL_CHARS = 60  # a timeline label wraps beyond this
MAX_MARKED_EPOCHS = 30  # beyond this, cell borders and per-epoch markers turn into noise


@dataclass(frozen=True)
class Legend:
    """The sweep-wide encoding: policy -> colour, codec family (reports/codecs.py) -> marker."""

    colours: dict[str, tuple]
    markers: dict[str, str]

    @classmethod
    def of(cls, settings: pd.DataFrame) -> "Legend":
        # The baseline's policy and codec first, so that they get the first colour and marker.
        policy, up, down = BASELINE
        policies = list(dict.fromkeys([policy, *sorted(settings["policy"].unique())]))
        codecs = list(dict.fromkeys([family_label(codec_label(up, down)),
                                     *sorted(settings["codec"].map(family_label).unique())]))
        palette = sns.color_palette("colorblind", len(policies))
        return cls(dict(zip(policies, palette)), {c: MARKERS[i % len(MARKERS)] for i, c in enumerate(codecs)})

    def handles(self, settings: pd.DataFrame) -> tuple[list, list]:
        """Legend entries for the policies and codec families present in `settings`, under two headings."""
        handles, labels = [Line2D([], [], ls="")], ["policy"]
        for policy in (p for p in self.colours if p in set(settings["policy"])):
            handles.append(Line2D([], [], ls="", marker="o", color=self.colours[policy]))
            labels.append(policy)
        handles.append(Line2D([], [], ls="")), labels.append(CODEC_HEADING)
        for codec in (c for c in self.markers if c in set(settings["codec"].map(family_label))):
            handles.append(Line2D([], [], ls="", marker=self.markers[codec], color="0.35", mfc="none"))
            labels.append(codec)
        return handles, labels


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, written as plain numbers (0.6, not 6e-01)."""

    def __call__(self, x, pos=None):
        return f"{x:.3g}" if super().__call__(x, pos) else ""


def setup() -> None:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)


def pareto(cell: pd.DataFrame, legend: Legend, title: str) -> plt.Figure:
    """Accuracy against bytes, both definitions side by side (log x), front as a step line."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True, layout="constrained")
    panels = (("comm_bytes", "Activations + gradients (the paper's definition)"),
              ("total_bytes", "Everything that crossed (+ labels, weight averaging)"))
    for ax, (cost, heading) in zip(axes, panels):
        _tradeoff(ax, cell, legend, cost, MB)
        ax.set(xlabel="communication over the run (MB, log scale)", title=heading)
    axes[0].set_ylabel("final test accuracy (%)")
    _legend(axes[-1], cell, legend)
    title_of(fig, "Accuracy vs communication", title)
    return fig


def flops(cell: pd.DataFrame, legend: Legend, title: str) -> plt.Figure:
    """Accuracy against client computation (log x), front as a step line."""
    fig, ax = plt.subplots(figsize=(10, 4.6), layout="constrained")
    _tradeoff(ax, cell, legend, "client_flops", GFLOP)
    ax.set(xlabel="client computation over the run (GFLOP, log scale)", ylabel="final test accuracy (%)")
    _legend(ax, cell, legend)
    title_of(fig, "Accuracy vs client computation", title)
    return fig


def modes(cell: pd.DataFrame, history: pd.DataFrame, title: str) -> plt.Figure:
    """FULL / FORWARD / CACHED per epoch for each setting of the communication front, baseline on top
    (the first MAX_TIMELINE_ROWS); a setting of several seeds shows its first seed's run."""
    chosen = pd.concat([cell[cell["baseline"]],
                        cell[front(cell["comm_bytes"], cell["acc"]) & ~cell["baseline"]].sort_values("comm_bytes")])
    runs = _first_seed_runs(chosen, history, [f"{s.setting}, {short_label(s.codec)}" for s in chosen.itertuples()])
    return _timeline(runs[:MAX_TIMELINE_ROWS], history, "Mode per epoch: baseline and communication front", title)


def gates(cell: pd.DataFrame, history: pd.DataFrame, title: str) -> plt.Figure:
    """The mode timeline of each gate family's best setting (frames.best_of_families), the paper's
    gate on top, each labelled with its reduction, paired accuracy difference and verdict: where one
    gate stays quiet (CACHED) longer than another, and what it costs."""
    chosen = best_of_families(cell)
    if chosen.empty:  # nothing but the baseline ran
        chosen = cell[cell["baseline"]]
    shown = [f"{s.family}: {s.setting}, {short_label(s.codec)}"
             + ("" if np.isnan(s.comm_x) or np.isnan(s.paired_delta_pp)
                else f" ({s.comm_x:.3g}x, {s.paired_delta_pp:+.1f} pp, {s.verdict})")
             for s in chosen.itertuples()]
    runs = _first_seed_runs(chosen, history, shown)
    return _timeline(runs[:MAX_TIMELINE_ROWS], history, "Mode per epoch: the best setting of each gate family", title)


def _timeline(runs: list[tuple[str, str]], history: pd.DataFrame, what: str, title: str) -> plt.Figure:
    """One row of FULL / FORWARD / CACHED cells per (run_id, label), in the order given."""
    table = history[history["metric"] == names.MODE].pivot_table(index="run_id", columns="epoch", values="value")
    table = table.reindex([r for r, _ in runs])
    # Long settings (a gate's every field) wrap, or their labels would squeeze the timeline away.
    labels = [textwrap.fill(label, width=TIMELINE_LABEL_CHARS) for _, label in runs]
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.38 * lines * len(runs)), layout="constrained")
    colours = matplotlib.colors.ListedColormap([c for _, c in MODES.values()])
    border = 1.5 if table.shape[1] <= MAX_MARKED_EPOCHS else 0
    ax.pcolormesh(table.to_numpy(), cmap=colours, vmin=-0.5, vmax=2.5, edgecolors="white", linewidth=border)
    ax.set_yticks(np.arange(len(runs)) + 0.5, labels)
    ax.invert_yaxis()
    epochs = table.columns.to_numpy()
    step = max(1, len(epochs) // 20)  # at most ~20 labelled epochs
    ax.set_xticks(np.arange(0, len(epochs), step) + 0.5, [str(int(e)) for e in epochs[::step]])
    ax.set(xlabel="epoch")
    ax.grid(False)
    ax.legend([Patch(color=c) for _, c in MODES.values()], [n for n, _ in MODES.values()],
              loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, title="mode")
    title_of(fig, what, title)
    return fig


def curves(cell: pd.DataFrame, history: pd.DataFrame, title: str) -> plt.Figure:
    """Test accuracy per epoch: the baseline and the most accurate settings of the front, the mean
    over seeds with its 95% confidence band (t-distribution) where there are several."""
    chosen, label = _best_of_front(cell)
    data = history[(history["metric"] == names.TEST_ACC) & history["per_seed"] & history["trial_run"].isin(label)].copy()
    data["run"] = data["trial_run"].map(label)
    data["value"] *= 100
    fig, ax = plt.subplots(figsize=(10, 5.4), layout="constrained")
    order = list(dict.fromkeys(label.values()))
    marker = "o" if data["epoch"].nunique() <= MAX_MARKED_EPOCHS else None
    sns.lineplot(data=data, x="epoch", y="value", hue="run", hue_order=order, marker=marker, ax=ax,
                 errorbar=_interval if chosen["seeds"].max() > 1 else None, palette="dark")
    low, high = ax.get_ylim()
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(max(low, 0), min(high, 101)))  # bands can overshoot
    ax.xaxis.get_major_locator().set_params(integer=True)
    _legend_below(fig, ax)
    title_of(fig, "Test accuracy per epoch: baseline and most accurate front settings", title)
    return fig


def _legend_below(fig: plt.Figure, ax: plt.Axes) -> None:
    """The settings' legend below the axes (beside them, long names would squeeze the plot): two
    columns where the names fit, else one, each name wrapped to the figure's width. A legend wider
    than the figure would collapse the axes."""
    handles, labels = ax.get_legend_handles_labels()
    chars = int(fig.get_figwidth() * 11)  # about 11 legend characters an inch
    ncols = 2 if max(map(len, labels), default=0) <= chars // 2 - 6 else 1
    labels = [textwrap.fill(label, width=chars // ncols - 6) for label in labels]
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, ncols=ncols,
              title="setting, codec")


def time_to_accuracy(cell: pd.DataFrame, history: pd.DataFrame, link: str, title: str) -> plt.Figure:
    """Test accuracy against the modelled time to train on `link` (measured compute plus modelled
    communication, `time/total_s` summed over the epochs so far): the baseline and the most accurate
    settings of the front, one line per setting through the means over its seeds of both at each epoch."""
    _, label = _best_of_front(cell)
    mine = history[history["per_seed"] & history["trial_run"].isin(label)]
    table = mine.pivot_table(index=["trial_run", "run_id", "epoch"], columns="metric", values="value").reset_index()
    table["minutes"] = table.groupby("run_id")[names.TOTAL_S].cumsum() / 60
    table["value"] = table[names.TEST_ACC] * 100
    table["run"] = table["trial_run"].map(label)
    means = table.groupby(["run", "epoch"])[["minutes", "value"]].mean().reset_index()
    fig, ax = plt.subplots(figsize=(10, 5.4), layout="constrained")
    marker = "o" if means["epoch"].nunique() <= MAX_MARKED_EPOCHS else None
    sns.lineplot(data=means, x="minutes", y="value", hue="run", hue_order=list(dict.fromkeys(label.values())),
                 estimator=None, sort=False, marker=marker, ax=ax, palette="dark")
    ax.set(xlabel=f"modelled time to train (minutes) on {link}", ylabel="test accuracy (%)")
    _legend_below(fig, ax)
    title_of(fig, f"Test accuracy against time to train on {link}", title)
    return fig


def partition(record: dict, title: str) -> plt.Figure:
    """A heat map of how many training samples of each class (columns) each client (rows) holds,
    as partition.json records it (bench.partition.class_counts), each count written in its square."""
    counts = np.array(record["class_counts"])
    clients, classes = counts.shape
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * classes + 2.5), 1.6 + 0.45 * clients), layout="constrained")
    sns.heatmap(counts, annot=clients * classes <= 400, fmt="d", cmap="Blues", linewidths=0.5, ax=ax,
                cbar_kws={"label": "samples"}, annot_kws={"fontsize": 8},
                xticklabels=[str(c) for c in range(classes)],
                yticklabels=[f"client {k} ({n})" for k, n in enumerate(counts.sum(axis=1))])
    ax.set(xlabel="class", ylabel="client (its samples)")
    ax.tick_params(axis="y", rotation=0)
    title_of(fig, f"Training samples per client and class: {record['label']}, seed {record['seed']}", title)
    return fig


def _best_of_front(cell: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The baseline and the MAX_CURVES most accurate settings of the communication front; trial run -> label."""
    on_front = cell[front(cell["comm_bytes"], cell["acc"]) & ~cell["baseline"]]
    chosen = pd.concat([cell[cell["baseline"]], on_front.nlargest(MAX_CURVES, "acc")])
    label = {run: f"{s.setting}, {short_label(s.codec)}" + (" (baseline)" if s.baseline else "")
             for s in chosen.itertuples() for run in s.run_ids}
    return chosen, label


def save(fig: plt.Figure, stem: Path, description: str) -> list[Path]:
    """`stem`.png and `stem`.svg, with `description` (how it was made) in their metadata; closes the figure."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=130, metadata={"Description": description})
    fig.savefig(paths[1], metadata={"Description": description})
    plt.close(fig)
    return paths


def _tradeoff(ax, cell: pd.DataFrame, legend: Legend, cost: str, unit: float) -> None:
    x, y = cell[cost] / unit, cell["acc"] * 100
    on = front(x, y)
    fx, fy = x[on].to_numpy(), y[on].to_numpy()
    order = np.argsort(fx)
    # The last step runs on to the costliest point: the best accuracy any larger budget buys.
    ax.plot([*fx[order], x.max()], [*fy[order], fy.max()], drawstyle="steps-post", **FRONT_STYLE)
    # No error bars on absolute accuracy: seed k of every setting shares its draws with seed k of the
    # baseline, so the seed-to-seed spread they would show is mostly shared and says nothing about a
    # comparison; the paired intervals are in the decisions figure.
    sns.scatterplot(x=x, y=y, hue=cell["policy"], style=cell["codec"].map(family_label), palette=legend.colours,
                    markers=legend.markers, s=70, ax=ax, legend=False, zorder=3, edgecolor="white")
    base = cell[cell["baseline"]]
    if len(base):
        bx, by = base[cost].iloc[0] / unit, base["acc"].iloc[0] * 100
        ax.scatter([bx], [by], marker="*", s=380, facecolor="none", edgecolor="black", lw=1.2, zorder=4)
        ax.axhline(by - margin_of(cell), ls=":", color="0.45", lw=1, zorder=1)
    ax.set_xscale("log")
    # Plain numbers (0.5, 2, 30) rather than 5x10^-1; minor ticks labelled when under two decades.
    ax.xaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _legend(ax, cell: pd.DataFrame, legend: Legend) -> None:
    handles, labels = legend.handles(cell)
    handles += [Line2D([], [], **FRONT_STYLE), Line2D([], [], ls="", marker="*", ms=14, mfc="none", mec="black"),
                Line2D([], [], ls=":", color="0.45")]
    labels += ["Pareto front (means)", f"baseline ({baseline_label()})", f"baseline - {margin_of(cell):g} pp"]
    box = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    for text in box.get_texts():
        if text.get_text() in ("policy", CODEC_HEADING):
            text.set_fontweight("bold")


def margin_of(cell: pd.DataFrame) -> float:
    """The cell's non-inferiority margin (pp): the settings' margin_pp, else noise.MARGIN_PP."""
    return float(cell["margin_pp"].iloc[0]) if "margin_pp" in cell and len(cell) else noise.MARGIN_PP


def title_of(fig: plt.Figure, what: str, cell_title: str) -> None:
    """Two lines, so that a long cell title is never cut off by the figure's edge."""
    cell_lines = textwrap.fill(cell_title, width=int(fig.get_figwidth() * 9))  # ~9 characters an inch
    fig.suptitle(f"{what}\n{cell_lines}", fontweight="bold", linespacing=1.4)


def _first_seed_runs(chosen: pd.DataFrame, history: pd.DataFrame, shown: list[str]) -> list[tuple[str, str]]:
    """(run_id, label) per setting of `chosen`, in its order: the run holding the `mode` history of the
    setting's first seed, labelled with its name (and that seed, when it has several)."""
    modes = history[(history["metric"] == names.MODE) & history["per_seed"]]
    out = []
    for s, name in zip(chosen.itertuples(), shown):
        runs = modes[modes["trial_run"].isin(s.run_ids)]
        first = runs.loc[runs["seed"].idxmin()] if len(runs) else {"run_id": s.run_ids[0], "seed": np.nan}
        run, seed = first["run_id"], first["seed"]
        which = f", seed {seed:g} of {s.seeds}" if s.seeds > 1 and not np.isnan(seed) else ""
        out.append((run, f"{name}{which}"))
    return out


def _interval(values) -> tuple[float, float]:
    """The 95% confidence interval of the mean of `values` (seaborn's errorbar callable); none for one value."""
    if len(values) < 2:
        return np.nan, np.nan
    return noise.mean_interval(values)
