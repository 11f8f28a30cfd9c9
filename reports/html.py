"""index.html: one self-contained page (inline CSS, images beside it) with the headline table,
each cell's figures and settings, and a caption under every figure and table saying how it was made."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pandas as pd

from reports import frames, noise, tables
from reports.frames import TOLERANCE_PP

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
th.group { text-align: center; border-bottom: 1px solid #c9d0dc; }
tr.base td { background: #fbf8ea; } .prov { font-size: 12px; color: #6b7588; }
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


def anchor(study: str) -> str:
    return "cell-" + "".join(c if c.isalnum() else "-" for c in study)


def _headline(page: Page) -> str:
    head = page.headline
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
        rows.append(
            f'<tr><td class="nowrap"><a href="#{anchor(row.study)}">{escape(cell.label)}</a></td>'
            f'<td class="num">{base}{seeds}</td>'
            + "".join(_reduction(row, name) for name in tables.REDUCTIONS) + f"<td>{paper}</td></tr>")
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
    caption = (f"Table 1. {cells_text}Per cell, the largest reduction against the baseline (always-sync, fp32 "
               f"both ways) among the settings whose mean final test accuracy over seeds is within "
               f"{TOLERANCE_PP:g} percentage points of the baseline's, and the setting and codec (up/down) that "
               f"achieved it; the change in mean accuracy in percentage points with its 95% confidence interval "
               f"(Welch), and whether it is within the noise (the interval contains 0) or a real loss or gain. "
               f"With one seed on either side the noise is unknown: no interval can be given. Baseline: mean "
               f"accuracy and its 95% confidence interval (t-distribution). Activations + gradients is the paper's "
               f"definition "
               f"(codec scales included); everything adds labels and client-weight averaging. The paper's "
               f"figures (Chen et al., SiPS 2021) are shown where it published one for the cell's model and "
               f"number of clients.{differ_text} {provenance(page, page.cells)}")
    return (f'<h2 id="headline">Headline: reductions at &le; {TOLERANCE_PP:g} pp accuracy loss</h2>'
            f'<table id="headline-table"><thead><tr><th>Cell</th><th>Baseline accuracy</th>{heads}'
            f"<th>Paper</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f'<p class="caption">{caption}</p>')


def _reduction(row, name: str) -> str:
    factor = getattr(row, f"{name}_x")
    if math.isnan(factor):
        return '<td class="none">no finished baseline</td>'
    setting, codec = getattr(row, f"{name}_setting"), getattr(row, f"{name}_codec")
    if factor <= 1:
        return (f'<td><span class="factor none">none</span><div class="by">no cheaper setting within '
                f"{TOLERANCE_PP:g} pp</div></td>")
    delta, low, high, verdict = (getattr(row, f"{name}_{c}") for c in ("delta_pp", "delta_ci_low", "delta_ci_high",
                                                                         "verdict"))
    return (f'<td><span class="factor">{_x(factor)}</span><div class="by">{escape(setting)}, {escape(codec)}; '
            f"{difference(delta, low, high, verdict)}</div></td>")


def difference(delta: float, low: float, high: float, verdict: str) -> str:
    """An accuracy change in words, e.g. "-0.3 pp (95% CI -1.2 to +0.6): within the noise", or
    "-0.3 pp, noise unknown (one seed)" when there is no interval."""
    if math.isnan(low):
        return f"{delta:+.1f} pp, {noise.UNKNOWN} (one seed)"
    return f"{delta:+.1f} pp (95% CI {low:+.1f} to {high:+.1f}): {escape(verdict)}"


def _seeds(n: int) -> str:
    return "1 seed: noise unknown" if n == 1 else f"{n} seeds"


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
            f"&lt; {TOLERANCE_PP:g}%.</p>")


def _cell(page: Page, cell, number: int) -> str:
    one = page.cells[page.cells["study"] == cell.study]
    prov = provenance(page, one)
    figs = "".join(
        f'<figure><img src="{escape(png)}" width="{width}" alt="{escape(caption)}"><figcaption>Figure {number}.{i}. '
        f"{escape(caption)} {prov}</figcaption></figure>"
        for i, (png, width, caption) in enumerate(page.figures.get(cell.study, []), start=1))
    return (f'<section id="{anchor(cell.study)}"><h2>{escape(cell.title)}</h2>'
            f'<p class="prov">Study <code>{escape(cell.study)}</code>, {cell.runs} finished trials.</p>'
            f"{figs}{_settings(page, cell, number, prov)}</section>")


def _settings(page: Page, cell, number: int, prov: str) -> str:
    rows = []
    group = page.settings[page.settings["study"] == cell.study].sort_values(["baseline", "comm_bytes"],
                                                                          ascending=[False, True])
    for s in group.itertuples(index=False):
        modes = f"{s.full_epochs:g} / {s.forward_epochs:g} / {s.cached_epochs:g}"
        delta = ("reference" if s.baseline else "" if math.isnan(s.delta_pp)
                 else f"{s.delta_pp:+.1f}" + (" ✓" if s.within else "") + _interval(s))
        rows.append(
            f"<tr{' class=base' if s.baseline else ''}><td>{escape(s.setting)}</td>"
            f"<td class='nowrap'>{escape(s.codec)}</td>"
            f"<td class='num'>{s.seeds}</td><td class='num'>{_pct(s.acc, s.acc_ci_low, s.acc_ci_high)}</td>"
            f"<td class='num'>{delta}</td>"
            f"<td class='num'>{s.comm_bytes / 1e6:,.2f}</td><td class='num'>{_x(s.comm_x)}</td>"
            f"<td class='num'>{s.total_bytes / 1e6:,.2f}</td><td class='num'>{_x(s.total_x)}</td>"
            f"<td class='num'>{s.client_flops / 1e9:,.2f}</td><td class='num'>{_x(s.flops_x)}</td>"
            f"<td class='num'>{modes}</td></tr>")
    head = ("<tr><th colspan=5></th><th colspan=2 class=group>Activations + gradients</th>"
            "<th colspan=2 class=group>Everything that crossed</th><th colspan=2 class=group>Client computation</th>"
            "<th></th></tr><tr><th>Setting</th><th>Codec</th><th>Seeds</th><th>Accuracy</th><th>&Delta; pp</th>"
            "<th>MB</th><th>reduction</th><th>MB</th><th>reduction</th><th>GFLOP</th><th>reduction</th>"
            "<th>Epochs F / B / C</th></tr>")
    caption = (f"Table {number + 2}. Every setting of the cell, seeds averaged (under the accuracy its 95% "
               f"confidence interval, t-distribution, where there are several seeds); the baseline first (shaded), "
               f"then by bytes. &Delta; pp: change in mean accuracy against the baseline, ✓ within {TOLERANCE_PP:g} "
               f"pp, under it the 95% Welch interval and whether the change is within the noise; with one seed on "
               f"either side the noise is unknown. F / B / C: FULL, FORWARD, CACHED "
               f"epochs. {prov}")
    return (f"<h3>All settings</h3><table class='settings'><thead>{head}</thead><tbody>{''.join(rows)}</tbody>"
            f"</table><p class='caption'>{caption}</p>")


def _pct(acc: float, low: float, high: float) -> str:
    """Mean accuracy and under it its confidence interval (not always symmetric: it stops at 0 and
    100%); the mean alone when the noise is unknown."""
    if math.isnan(acc):
        return '<span class="none">n/a</span>'
    interval = "" if math.isnan(low) else f'<div class="by">CI {low * 100:.1f} to {high * 100:.1f}</div>'
    return f"{acc * 100:.1f}%{interval}"


def _interval(s) -> str:
    """Under a setting's accuracy change: its interval and verdict, on two short lines (the column is narrow)."""
    if math.isnan(s.delta_ci_low):
        return f'<div class="by">{noise.UNKNOWN}</div>'
    return (f'<div class="by">CI {s.delta_ci_low:+.1f} to {s.delta_ci_high:+.1f}</div>'
            f'<div class="by">{escape(s.verdict)}</div>')


def _x(factor: float) -> str:
    if math.isnan(factor):
        return ""
    return f"{factor:,.0f}x" if factor >= 100 else f"{factor:.2f}x" if factor < 10 else f"{factor:.1f}x"
