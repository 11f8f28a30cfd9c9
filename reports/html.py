"""index.html: one self-contained page (inline CSS, images beside it) with the headline table,
each cell's figures and settings, and a caption under every figure and table saying how it was made."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pandas as pd

from reports import frames, noise, tables

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430;
       max-width: 1240px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 40px 0 8px;
     border-bottom: 1px solid #d8dde6; padding-bottom: 4px; } h3 { font-size: 16px; margin: 24px 0 6px; }
.lede { color: #4a5568; margin: 0 0 12px; } nav a { margin-right: 16px; }
a { color: #1b4f8a; } figure { margin: 16px 0 28px; } img { max-width: 100%; height: auto; display: block; }
figcaption, .caption { font-size: 13px; color: #4a5568; margin-top: 6px; max-width: 1100px; }
table { border-collapse: collapse; font-size: 14px; margin: 8px 0; }
th, td { padding: 6px 10px; border-bottom: 1px solid #e2e6ee; text-align: left; vertical-align: top; }
th { background: #f3f5f9; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.factor { font-size: 17px; font-weight: 600; } .by { color: #4a5568; font-size: 12.5px; }
.none { color: #8a94a6; } .made { display: block; margin-top: 3px; font-size: 12px; color: #6b7588; }
td.num, td.nowrap { white-space: nowrap; } table.settings { font-size: 13.5px; }
table.settings th, table.settings td { padding: 5px 7px; } .wide { overflow-x: auto; }
th.group { text-align: center; border-bottom: 1px solid #c9d0dc; }
tr.base td { background: #fbf8ea; } .prov { font-size: 12px; color: #6b7588; }
.rule { margin-top: 6px; padding-top: 4px; border-top: 1px dotted #c9d0dc; color: #6b7588; font-size: 12px; }
.verdict-non-inferior { color: #00795a; font-weight: 600; } .verdict-inferior { color: #b34700; font-weight: 600; }
.verdict-undecided { color: #9a6a00; font-weight: 600; } .verdict-noise-unknown { color: #6b7588; }
footer { margin-top: 48px; font-size: 12.5px; color: #6b7588; border-top: 1px solid #d8dde6; padding-top: 8px; }
"""


@dataclass(frozen=True)
class Page:
    """What the page shows. figures: study -> [(png file name, width in CSS pixels, caption)];
    files: the CSV names."""

    experiment: str
    source: str  # where the runs were read from
    cells: pd.DataFrame
    settings: pd.DataFrame
    headline: pd.DataFrame
    figures: dict[str, list[tuple[str, int, str]]]
    failed: int  # runs not shown because they did not finish
    repeats: int  # trials not shown because they repeated an earlier trial's setting (tag duplicate_of)
    render_versions: str
    files: list[str]
    ablation: pd.DataFrame | None = None  # reports/ablation.py: the steps of each ablated cell


def write(page: Page, path: Path) -> None:
    path.write_text(render(page), encoding="utf-8")


def render(page: Page) -> str:
    nav = "".join(f'<a href="#{anchor(s)}">{escape(t)}</a>' for s, t in zip(page.cells["study"], page.cells["title"]))
    runs = int(page.cells["runs"].sum())
    failed = ("" if not page.failed else "; 1 unfinished or failed run is not shown" if page.failed == 1
              else f"; {page.failed} unfinished or failed runs are not shown")
    repeats = ("" if not page.repeats else f"; {page.repeats} trial{'s' * (page.repeats != 1)} repeating an earlier "
               f"trial's setting {'is' if page.repeats == 1 else 'are'} counted once")
    body = [
        f"<h1>splitbench report: {escape(page.experiment)}</h1>",
        f'<p class="lede">{len(page.cells)} cells, {runs} finished trials{failed}{repeats}. Read from MLflow '
        "experiment "
        f"<code>{escape(page.experiment)}</code> at <code>{escape(page.source)}</code>.</p>",
        f"<nav>{nav}</nav>",
        _headline(page),
        _ablation(page),
        _paper(),
    ]
    for number, cell in enumerate(page.cells.itertuples(index=False), start=1):
        body.append(_cell(page, cell, number))
    links = " · ".join(f'<a href="{escape(f)}">{escape(f)}</a>' for f in page.files)
    body.append(f"<footer>Tables as CSV: {links}. Figures as PNG and SVG beside this page. "
                f"Rendered with {escape(page.render_versions)}.</footer>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>splitbench report: {escape(page.experiment)}</title><style>{CSS}</style></head>\n"
            f"<body>\n" + "\n".join(body) + "\n</body></html>\n")


def provenance(page: Page, cells: pd.DataFrame) -> str:
    """How the runs of `cells` were made: sweep, data, epochs, seeds, device, versions, git commit."""
    def joined(column):
        return "; ".join(dict.fromkeys(str(v) for v in cells[column]))

    parts = [f"sweep <code>{escape(page.experiment)}</code>", f"data: {escape(joined('data_source'))}",
             f"epochs: {escape(joined('epochs'))}", f"seeds: {escape(joined('seeds'))}",
             f"device: {escape(joined('device'))}", escape(joined("versions")),
             f"rendered with {escape(page.render_versions)}", f"git commit <code>{escape(joined('git_commit'))}</code>"]
    return '<span class="made">Made from ' + " · ".join(parts) + ".</span>"


def _ablation(page: Page) -> str:
    """Each ablated cell's table: the best non-inferior setting, then one ingredient taken away at a time."""
    if page.ablation is None or page.ablation.empty:
        return ""
    parts = []
    for study, group in page.ablation.groupby("study", sort=False):
        rows = "".join(
            f"<tr><td>{escape(str(r.step))}</td><td>{escape(str(r.setting))}</td><td>{escape(str(r.codec))}</td>"
            f"<td>{_x(r.comm_x)}</td><td>{difference(r.paired_delta_pp, r.paired_ci_low, r.paired_ci_high, r.verdict, int(r.looks) if pd.notna(r.looks) else 1)}</td></tr>"
            for r in group.itertuples())
        parts.append(f'<h2 id="ablation-{anchor(study)}">Ablation: {escape(study)}</h2>'
                     "<p>The largest reduction non-inferior at the margin, then the same setting with one ingredient "
                     "taken away at a time: what each ingredient buys in reduction and costs in accuracy.</p>"
                     "<table><tr><th>taken away</th><th>setting</th><th>codec</th><th>comm. reduction</th>"
                     f"<th>Δ accuracy, paired</th></tr>{rows}</table>")
    return "".join(parts)


def anchor(study: str) -> str:
    return "cell-" + "".join(c if c.isalnum() else "-" for c in study)


def _headline(page: Page) -> str:
    head = page.headline
    margin = _margin(page)
    rows = []
    for row, cell in zip(head.itertuples(index=False), page.cells.itertuples(index=False)):
        base = _pct(row.baseline_acc, row.baseline_ci_low, row.baseline_ci_high)
        seeds = f'<div class="by">{_seeds(row.baseline_seeds)}</div>'
        if row.paper_comm:
            paper = (f'<span class="factor">{escape(row.paper_comm)}</span>'
                     f'<div class="by">computation: {escape(row.paper_compute)}</div>')
        else:
            clients = "1 client" if cell.clients == 1 else f"{cell.clients:g} clients"
            paper = f'<span class="none">none for {escape(cell.model)}, {clients}</span>'
        one = page.settings[page.settings["study"] == row.study]
        rows.append(
            f'<tr><td class="nowrap"><a href="#{anchor(row.study)}">{escape(cell.label)}</a></td>'
            f'<td class="num">{base}{seeds}</td>'
            + "".join(_reduction(row, name, one, margin) for name in tables.REDUCTIONS) + f"<td>{paper}</td></tr>")
    heads = "".join(f"<th>{escape(label.capitalize())}</th>" for _, label in tables.REDUCTIONS.values())
    kinds = dict.fromkeys(d for d in head["differences"] if d)
    if not kinds:
        differ_text = " The cells match the paper's setup."
    elif len(kinds) == 1 and all(head["differences"]):
        differ_text = (f" Our setup differs from the paper's, so the factors are not comparable one to one: "
                       f"{escape(next(iter(kinds)))}.")
    else:
        listed = "; ".join(f"{escape(r.title)}: {escape(r.differences)}" for r in head.itertuples() if r.differences)
        differ_text = f" Where our setup differs from the paper's, the factors are not comparable one to one. {listed}."
    shared = frames.shared_title(page.cells["title"])
    cells_text = f"All cells: {escape(shared)}. " if shared and len(page.cells) > 1 else ""
    policy, up, _ = frames.BASELINE
    caption = (f"Table 1. {cells_text}Per cell and cost, the largest reduction against the baseline ({policy}-sync, "
               f"{up} both ways) among the settings shown non-inferior at a margin of {margin:g} percentage points, "
               f"and the setting and codec (up/down) that achieved it. {METHOD.format(margin=f'{margin:g}')} Under a "
               f"dotted line, for comparison with the paper: the largest reduction by PAPER.md's rule, a mean "
               f"accuracy over seeds within {margin:g} pp of the baseline's (its change on means, and that "
               f"setting's paired verdict); a mean within the margin is not evidence that a setting is as good as "
               f"the baseline. Baseline: mean accuracy and its 95% confidence interval (t-distribution). "
               f"Activations + gradients is the paper's definition (codec scales included); everything adds labels "
               f"and client-weight averaging. The paper's figures (Chen et al., SiPS 2021) are shown where it "
               f"published one for the cell's model and number of clients.{differ_text} "
               f"{provenance(page, page.cells)}")
    return (f'<h2 id="headline">Headline: the largest reductions non-inferior at {margin:g} pp</h2>'
            f'<table id="headline-table"><thead><tr><th>Cell</th><th>Baseline accuracy</th>{heads}'
            f"<th>Paper</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f'<p class="caption">{caption}</p>')


# How a setting is judged, said once for every table and figure that shows a verdict; {margin} in pp.
METHOD = ("Each setting is compared with the baseline seed by seed (seed k of both starts from the same weights, "
          "data order and augmentations): &Delta; is the mean of the per-seed accuracy differences in "
          "percentage points, over the seeds both have, and its interval is the paired t interval (n &minus; 1 "
          "degrees of freedom) whose ends are the two one-sided 95% bounds, a 90% CI; with adaptive seeds "
          "over K looks each bound is taken at 5%/K (Bonferroni alpha spending, always valid however the "
          "sweep stopped), so the interval is a (100 &minus; 10/K)% CI. The verdict is the two one-sided tests "
          "(TOST, as statsmodels' ttost_paired computes them) at the margin M = {margin} pp: non-inferior "
          "when the lower bound is above &minus;M, inferior when the upper bound is below &minus;M, undecided "
          "otherwise; with fewer than two paired seeds the noise is unknown and no verdict can be given.")


def interval_name(looks: int) -> str:
    """The paired interval as named on the page: "90% CI" for a fixed seed list (one look), the
    Bonferroni level over K looks otherwise, e.g. "98.75% CI" for 8 looks (noise.paired)."""
    looks = max(1, int(looks))
    return f"{100 * (1 - 2 * noise.ALPHA / looks):.4g}% CI"


def _reduction(row, name: str, cell: pd.DataFrame, margin: float) -> str:
    """One headline cell: the largest non-inferior reduction with its paired difference, interval,
    verdict and seeds; under it the largest by PAPER.md's rule on means."""
    if math.isnan(row.baseline_acc):
        return '<td class="none">no finished baseline</td>'
    factor = getattr(row, f"{name}_x")
    pick = {c: getattr(row, f"{name}_{c}") for c in ("setting", "codec", "paired_delta_pp", "paired_ci_low",
                                                      "paired_ci_high", "verdict", "seeds")}
    if math.isnan(factor):
        others = cell[~cell["baseline"]]
        unknown = len(others) and (others["verdict"] == noise.UNKNOWN).all()
        why = (f"{noise.UNKNOWN}: fewer than two paired seeds, so no setting can be shown non-inferior"
               if unknown else "" if len(others) else "only the baseline finished")
        main = (f'<span class="factor none">none</span><div class="by">none non-inferior at {margin:g} pp'
                f"{': ' + why if why else ''}</div>")
    else:
        looks = _looks(cell, pick["setting"], pick["codec"])
        cheaper = "" if factor > 1 else f'<div class="by">no cheaper setting non-inferior at {margin:g} pp</div>'
        words = difference(pick["paired_delta_pp"], pick["paired_ci_low"], pick["paired_ci_high"], pick["verdict"],
                           looks)
        main = (f'<span class="factor">{_x(factor)}</span>{cheaper}<div class="by">{escape(pick["setting"])}, '
                f'{escape(pick["codec"])}</div><div class="by">paired &Delta; {words}, {_seeds(pick["seeds"])}</div>')
    return f"<td>{main}{_mean_rule(row, name, cell, margin, pick)}</td>"


def _mean_rule(row, name: str, cell: pd.DataFrame, margin: float, pick: dict) -> str:
    """The largest reduction by PAPER.md's rule (mean within the margin), in grey under the headline's."""
    factor = getattr(row, f"{name}_mean_rule_x")
    what = f"paper's rule (mean within {margin:g} pp)"
    if math.isnan(factor):
        return f'<div class="rule">{what}: no setting</div>'
    setting, delta, verdict = (getattr(row, f"{name}_mean_rule_{c}") for c in ("setting", "delta_pp", "verdict"))
    if setting == pick["setting"] and factor == getattr(row, f"{name}_x"):
        return f'<div class="rule">{what}: the same, {_x(factor)}</div>'
    factor_col = tables.REDUCTIONS[name][0]
    mine = cell[(cell["setting"] == setting) & cell["within"] & (cell[factor_col] == factor)]
    codec = f", {escape(mine['codec'].iloc[0])}" if len(mine) else ""
    return (f'<div class="rule">{what}: {_x(factor)}, {escape(setting)}{codec}; {delta:+.2f} pp on means; '
            f"paired: {_verdict(verdict)}</div>")


def difference(delta: float, low: float, high: float, verdict: str, looks: int = 1) -> str:
    """A paired accuracy difference in words, e.g. "+0.59 pp (90% CI -0.79 to +1.97): non-inferior",
    or "-0.30 pp: noise unknown" when there is no interval."""
    if math.isnan(delta):
        return f"n/a: {_verdict(verdict)}"
    if math.isnan(low):
        return f"{delta:+.2f} pp: {_verdict(verdict)}"
    return f"{delta:+.2f} pp ({interval_name(looks)} {low:+.2f} to {high:+.2f}): {_verdict(verdict)}"


def _verdict(word: str) -> str:
    """A verdict word, coloured by a class of its own (verdict-non-inferior, ...)."""
    if not word:
        return ""
    return f'<span class="verdict-{word.replace(" ", "-")}">{escape(word)}</span>'


def _looks(cell: pd.DataFrame, setting: str, codec: str) -> int:
    """The looks of a setting's adaptive seeds (1 for a fixed seed list), found by its name in its cell."""
    mine = cell[(cell["setting"] == setting) & (cell["codec"] == codec)]
    return int(mine["looks"].max()) if len(mine) else 1


def _margin(page: Page) -> float:
    return float(page.settings["margin_pp"].iloc[0]) if len(page.settings) else noise.MARGIN_PP


def _seeds(n) -> str:
    if isinstance(n, float) and math.isnan(n):
        return ""
    n = int(n)
    return f"1 seed: {noise.UNKNOWN}" if n == 1 else f"{n} seeds"


def _paper() -> str:
    rows = "".join(
        f"<tr><td>{escape(p.models)}</td><td class='num'>{p.clients}</td>"
        f"<td class='num'>{escape(p.comm_reduction)}</td>"
        f"<td class='num'>{escape(p.compute_reduction)}</td><td>{escape(p.note)}</td></tr>"
        for p in tables.PAPER.itertuples())
    return ("<h3>The paper's published figures</h3><table id='paper-table'><thead><tr><th>Models</th><th>Clients</th>"
            "<th>Communication reduction</th><th>Client computation reduction</th><th></th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p class='caption'>Table 2. From the abstract of Chen, Li, Chakrabarti, "
            "&ldquo;Communication and Computation Reduction for Split Learning using Asynchronous Training&rdquo;, "
            "IEEE SiPS 2021 (arXiv 2107.09786): CIFAR-10, 200 epochs, FP8 activations and gradients, accuracy loss "
            f"&lt; {noise.MARGIN_PP:g}%.</p>")


def _cell(page: Page, cell, number: int) -> str:
    one = page.cells[page.cells["study"] == cell.study]
    prov = provenance(page, one)
    figs = "".join(
        f'<figure><img src="{escape(png)}" width="{width}" alt="{escape(caption)}"><figcaption>Figure {number}.{i}. '
        f"{escape(caption)} {prov}</figcaption></figure>"
        for i, (png, width, caption) in enumerate(page.figures.get(cell.study, []), start=1))
    return (f'<section id="{anchor(cell.study)}"><h2>{escape(cell.title)}</h2>'
            f'<p class="prov">Study <code>{escape(cell.study)}</code>, {cell.runs} finished trials.</p>'
            f"{_verdict_counts(page, cell)}{figs}{_settings(page, cell, number, prov)}</section>")


def _verdict_counts(page: Page, cell) -> str:
    """One line: how many of the cell's settings got each verdict, e.g. "2 non-inferior, 1 undecided"."""
    others = page.settings[(page.settings["study"] == cell.study) & ~page.settings["baseline"]]
    if not len(others) or (others["verdict"] == "").all():  # nothing but the baseline, or no baseline
        return ""
    counts = others["verdict"].value_counts()
    words = ", ".join(f"{counts.get(v, 0)} {_verdict(v)}" for v in noise.VERDICTS)
    unknown = (f" One seed per setting: the noise is unknown, so no setting can be shown non-inferior."
               if counts.get(noise.UNKNOWN, 0) == len(others) else "")
    return f'<p class="lede">Verdicts at {_margin(page):g} pp against the baseline: {words}.{unknown}</p>'


def _settings(page: Page, cell, number: int, prov: str) -> str:
    rows = []
    group = page.settings[page.settings["study"] == cell.study].sort_values(["baseline", "comm_bytes"],
                                                                          ascending=[False, True])
    margin = _margin(page)
    for s in group.itertuples(index=False):
        modes = f"{s.full_epochs:g} / {s.forward_epochs:g} / {s.cached_epochs:g}"
        if s.baseline:
            delta, verdict, rho, means = "reference", "reference", "", ""
        else:
            delta = _paired(s)
            verdict = _verdict(s.verdict)
            rho = "" if math.isnan(s.rho) else f"{s.rho:.2f}"
            means = ("" if math.isnan(s.delta_pp) else
                     f'<div class="by">means {s.delta_pp:+.2f}{" ✓" if s.within else ""}</div>')
        paired = "" if s.baseline or s.paired_seeds == s.seeds else f'<div class="by">{s.paired_seeds:g} paired</div>'
        rows.append(
            f"<tr{' class=base' if s.baseline else ''}><td>{escape(s.setting)}</td>"
            f"<td class='nowrap'>{escape(s.codec)}</td>"
            f"<td class='num'>{s.seeds}{paired}</td><td class='num'>{_pct(s.acc, s.acc_ci_low, s.acc_ci_high)}</td>"
            f"<td class='num'>{delta}</td><td class='nowrap'>{verdict}{means}</td><td class='num'>{rho}</td>"
            f"<td class='num'>{s.comm_bytes / 1e6:,.2f}</td><td class='num'>{_x(s.comm_x)}</td>"
            f"<td class='num'>{s.total_bytes / 1e6:,.2f}</td><td class='num'>{_x(s.total_x)}</td>"
            f"<td class='num'>{s.client_flops / 1e9:,.2f}</td><td class='num'>{_x(s.flops_x)}</td>"
            f"<td class='num'>{modes}</td></tr>")
    head = ("<tr><th colspan=4></th><th colspan=3 class=group>Paired against the baseline</th>"
            "<th colspan=2 class=group>Activations + gradients</th>"
            "<th colspan=2 class=group>Everything that crossed</th><th colspan=2 class=group>Client computation</th>"
            "<th></th></tr><tr><th>Setting</th><th>Codec</th><th>Seeds</th><th>Accuracy</th>"
            f"<th>&Delta; pp</th><th>Verdict at {margin:g} pp</th><th>&rho;</th>"
            "<th>MB</th><th>reduction</th><th>MB</th><th>reduction</th><th>GFLOP</th><th>reduction</th>"
            "<th>Epochs F / B / C</th></tr>")
    caption = (f"Table {number + 2}. Every setting of the cell, seeds averaged (under the accuracy its 95% "
               f"confidence interval, t-distribution, where there are several seeds; under the seeds, how many "
               f"of them the baseline has too, where that is fewer); the baseline first (shaded), then by bytes. "
               f"{METHOD.format(margin=f'{margin:g}')} &Delta; pp: the paired difference, under it its interval. "
               f"&rho;: the correlation of the setting's and the baseline's per-seed accuracies (three paired "
               f"seeds or more): the higher, the more the pairing narrows the interval. Under the verdict, "
               f"&ldquo;means&rdquo;: mean accuracy minus the baseline's in pp, ✓ within {margin:g} pp (PAPER.md's "
               f"rule, for comparison). F / B / C: FULL, FORWARD, CACHED epochs. {prov}")
    return (f"<h3>All settings</h3><div class='wide'><table class='settings'><thead>{head}</thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div><p class='caption'>{caption}</p>")


def _pct(acc: float, low: float, high: float) -> str:
    """Mean accuracy and under it its confidence interval (not always symmetric: it stops at 0 and
    100%); the mean alone when the noise is unknown."""
    if math.isnan(acc):
        return '<span class="none">n/a</span>'
    interval = "" if math.isnan(low) else f'<div class="by">CI {low * 100:.1f} to {high * 100:.1f}</div>'
    return f"{acc * 100:.1f}%{interval}"


def _paired(s) -> str:
    """Under a setting's paired difference: its interval, on a short line (the column is narrow)."""
    if math.isnan(s.paired_delta_pp):
        return '<span class="none">n/a</span>'
    if math.isnan(s.paired_ci_low):
        return f"{s.paired_delta_pp:+.2f}"
    return (f"{s.paired_delta_pp:+.2f}<div class='by'>{interval_name(s.looks)} {s.paired_ci_low:+.2f} to "
            f"{s.paired_ci_high:+.2f}</div>")


def _x(factor: float) -> str:
    if math.isnan(factor):
        return ""
    return f"{factor:,.0f}x" if factor >= 100 else f"{factor:.2f}x" if factor < 10 else f"{factor:.1f}x"
