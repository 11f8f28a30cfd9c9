"""The decisions figure of one cell: each setting's paired accuracy difference from the baseline
against its communication reduction, coloured and shaped by its verdict (VERDICT_STYLE), the
settings numbered and named in a key below (reports/figures.py draws the others).
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reports import noise
from reports.codecs import short_label
from reports.figures import PlainLogFormatter, margin_of, title_of
from reports.labels import baseline_label
from reports.pareto import front

# verdict -> (colour, marker): Okabe-Ito colours, and a shape of its own for readers who see no colour
VERDICT_STYLE = {noise.NON_INFERIOR: ("#009E73", "o"), noise.UNDECIDED: ("#E69F00", "D"),
                 noise.INFERIOR: ("#D55E00", "v"), noise.UNKNOWN: ("#8c8c8c", "X")}
MAX_DECISION_LABELS = 12  # numbered settings in a decisions figure; beyond it, the decision front only
DECISION_LABEL_CHARS = 70  # a decisions key entry wraps beyond this


def decisions(cell: pd.DataFrame, title: str) -> plt.Figure:
    """Each setting's paired accuracy difference from the baseline (pp) against its communication
    reduction (log x), with its interval [paired_ci_low, paired_ci_high] as an error bar, marker
    and colour by verdict; the region more than the margin below the baseline shaded, lines at
    -margin and 0. Settings are numbered (the largest reduction first) and named in a key below the
    axes: all of them up to MAX_DECISION_LABELS, else those of the decision front (no other setting
    has both a larger reduction and a higher difference) and the largest non-inferior one. A setting
    without a seed in common with the baseline has no paired difference and is not drawn."""
    margin = margin_of(cell)
    fig, ax = plt.subplots(figsize=(11, 6.4), layout="constrained")
    title_of(fig, "Decisions: paired accuracy difference against communication reduction", title)
    ax.set(xlabel="communication reduction against the baseline (activations + gradients; x, log scale)",
           ylabel="Δ accuracy vs baseline (pp, paired)")
    base = cell[cell["baseline"]]
    if base.empty:
        ax.text(0.5, 0.5, f"no finished baseline ({baseline_label()}): nothing to compare with", ha="center",
                va="center", transform=ax.transAxes, color="0.35")
        ax.set(xticks=[], yticks=[])
        return fig
    placed = cell["paired_delta_pp"].notna() & np.isfinite(cell["comm_x"]) & (cell["comm_x"] > 0)
    shown = cell[~cell["baseline"] & placed]
    shown = shown.sort_values(["comm_x", "paired_delta_pp"], ascending=False)
    points = np.concatenate([shown["paired_delta_pp"].to_numpy(), [0.0, -margin]])
    low, high = _decision_limits(points, shown["paired_ci_low"].dropna(), shown["paired_ci_high"].dropna())
    _decision_points(ax, shown, margin, low, high)
    ax.set_xscale("log")
    xs = np.concatenate([shown["comm_x"].to_numpy(), [1.0]])
    ax.set_xlim(xs.min() / 1.35, xs.max() * 1.35)
    numbered, key_title = _numbered(shown)
    _number(ax, numbered)
    if len(shown) and (shown["verdict"] == noise.UNKNOWN).all():
        ax.text(0.5, 0.97, "fewer than two paired seeds: the noise is unknown, so no setting can be shown "
                "non-inferior", ha="center", va="top", transform=ax.transAxes, color="0.3", fontsize=9.5)
    ax.xaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    _verdict_legend(ax, margin, int(shown["looks"].max()) if len(shown) else 1)
    if len(numbered):
        _decision_key(fig, numbered, key_title)
    elif not len(shown):
        ax.text(0.5, 0.9, "only the baseline finished", ha="center", transform=ax.transAxes, color="0.35")
    return fig


def _decision_points(ax, shown: pd.DataFrame, margin: float, low: float, high: float) -> None:
    """The decisions figure's axes between `low` and `high`: the region below -margin shaded, the lines
    at -margin and 0, each setting's point and interval by verdict, the baseline's star, and an
    arrowhead at the edge for an interval that runs off the axes."""
    ax.axhspan(low, -margin, color=VERDICT_STYLE[noise.INFERIOR][0], alpha=0.08, lw=0, zorder=0)
    ax.axhline(-margin, color=VERDICT_STYLE[noise.INFERIOR][0], ls="--", lw=1.2, zorder=1)
    ax.axhline(0, color="0.3", lw=1, zorder=1)
    for verdict, (colour, marker) in VERDICT_STYLE.items():
        group = shown[shown["verdict"] == verdict]
        bars = group[group["paired_ci_low"].notna()]
        if len(bars):
            y = bars["paired_delta_pp"]
            ax.errorbar(bars["comm_x"], y, yerr=[y - bars["paired_ci_low"], bars["paired_ci_high"] - y], fmt="none",
                        ecolor=colour, elinewidth=1.3, capsize=4, alpha=0.85, zorder=2)
        ax.scatter(group["comm_x"], group["paired_delta_pp"], color=colour, marker=marker, s=64, edgecolor="white",
                   linewidth=0.8, zorder=3)
    ax.scatter([1.0], [0.0], marker="*", s=380, facecolor="none", edgecolor="black", lw=1.2, zorder=4)
    ax.set_ylim(low, high)
    # A bar that runs off the axes ends in an arrowhead at the edge (its numbers are in the key).
    for verdict, (colour, _) in VERDICT_STYLE.items():
        group = shown[shown["verdict"] == verdict]
        clipped = ((group["paired_ci_low"] < low, low, "v"), (group["paired_ci_high"] > high, high, "^"))
        for ends, edge, marker in clipped:
            if ends.any():
                ax.plot(group.loc[ends, "comm_x"], [edge] * int(ends.sum()), ls="", marker=marker, ms=8, color=colour,
                        clip_on=False, zorder=4)


def _verdict_legend(ax, margin: float, looks: int) -> None:
    """The decisions figure's legend beside the axes: the verdicts' markers, the baseline, the lines."""
    handles = [Line2D([], [], ls="", marker=m, color=c, ms=8) for c, m in VERDICT_STYLE.values()]
    labels = list(VERDICT_STYLE)
    handles += [Line2D([], [], ls="", marker="*", ms=14, mfc="none", mec="black"),
                Line2D([], [], color="0.3", lw=1), Line2D([], [], color=VERDICT_STYLE[noise.INFERIOR][0], ls="--"),
                Patch(color=VERDICT_STYLE[noise.INFERIOR][0], alpha=0.15),
                Line2D([], [], ls="", marker="|", ms=14, mew=1.3, color="0.35")]
    labels += [f"baseline ({baseline_label()})", "no difference", f"margin: -{margin:g} pp",
               f"more than {margin:g} pp below", _bar_label(looks)]
    box = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False,
                    title=f"verdict at {margin:g} pp")
    box.get_title().set_fontweight("bold")


def _decision_key(fig, numbered: pd.DataFrame, key_title: str) -> None:
    """The key below the axes: each numbered setting with its numbers, marked by its verdict."""
    entries = [textwrap.fill(f"{i}. {s.setting}, {short_label(s.codec)}: {_decision_numbers(s)}",
                             width=DECISION_LABEL_CHARS, subsequent_indent="    ")
               for i, s in enumerate(numbered.itertuples(), start=1)]
    key_handles = [Line2D([], [], ls="", marker=VERDICT_STYLE.get(s.verdict, ("0.5", "o"))[1],
                          color=VERDICT_STYLE.get(s.verdict, ("0.5", "o"))[0]) for s in numbered.itertuples()]
    fig.legend(key_handles, entries, loc="outside lower center", ncols=1 if len(entries) <= 4 else 2,
               frameon=False, title=key_title, fontsize=8.5, title_fontsize=9.5, alignment="left")


def _number(ax, numbered: pd.DataFrame) -> None:
    """Write 1, 2, ... beside the points of `numbered`, each at the first of a few offsets where it
    overlaps no number already written (points of a sweep crowd together)."""
    offsets = [(5, 4), (5, -13), (-16, 4), (-16, -13), (5, 14), (-16, 14)]
    taken: list[tuple[float, float, float, float]] = []
    for number, s in enumerate(numbered.itertuples(), start=1):
        px, py = ax.transData.transform((s.comm_x, s.paired_delta_pp)) * 72 / ax.figure.dpi  # points
        width = 6.5 * len(str(number))
        for dx, dy in offsets:
            box = (px + dx, py + dy, px + dx + width, py + dy + 9)
            if not any(box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3] for o in taken):
                break
        else:
            dx, dy = offsets[0]
            box = (px + dx, py + dy, px + dx + width, py + dy + 9)
        taken.append(box)
        ax.annotate(str(number), (s.comm_x, s.paired_delta_pp), xytext=(dx, dy), textcoords="offset points",
                    fontsize=9, fontweight="bold", color="0.15", zorder=5)


def _decision_limits(points: np.ndarray, lows: pd.Series, highs: pd.Series) -> tuple[float, float]:
    """y limits holding every point, 0 and -margin, and the error bars unless one would squeeze the
    points into a sliver (a bar of two seeds can span tens of points): those run off the axes."""
    core_low, core_high = points.min(), points.max()
    span = max(core_high - core_low, 1.0)
    low = max(min(core_low, lows.min() if len(lows) else core_low), core_low - 1.5 * span)
    high = min(max(core_high, highs.max() if len(highs) else core_high), core_high + 1.5 * span)
    pad = 0.06 * (high - low)
    return low - pad, high + pad


def _numbered(shown: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The settings a decisions figure names, the largest reduction first, and the key's title."""
    if len(shown) <= MAX_DECISION_LABELS:
        return shown, "settings, the largest reduction first"
    on = front(1 / shown["comm_x"], shown["paired_delta_pp"])
    best = shown[shown["verdict"] == noise.NON_INFERIOR].head(1).index
    chosen = shown[on | shown.index.isin(best)].head(MAX_DECISION_LABELS)
    return chosen, (f"the decision front and the largest non-inferior reduction ({len(chosen)} of "
                    f"{len(shown)} settings), the largest reduction first")


def _decision_numbers(s) -> str:
    """"+0.59 pp [-0.79, +1.97], 3 seeds, non-inferior"; without an interval, "noise unknown"."""
    bounds = "" if np.isnan(s.paired_ci_low) else f" [{s.paired_ci_low:+.2f}, {s.paired_ci_high:+.2f}]"
    seeds = f"{s.paired_seeds:g} seed" + ("s" if s.paired_seeds != 1 else "")
    return f"{s.comm_x:.3g}x, {s.paired_delta_pp:+.2f} pp{bounds}, {seeds}, {s.verdict}"


def _bar_label(looks: int) -> str:
    from reports.html import interval_name  # words of the page, shared; html imports no figure

    return f"{interval_name(looks)}, paired t"
