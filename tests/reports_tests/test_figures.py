"""Smoke tests of the figures: they draw what they should from small frames and save PNG and SVG."""

import math
import warnings

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection
import pytest
from PIL import Image

from reports import decisions, figures, frames, noise
from tests.reports_tests.runs import run, settings as settings_of, trial


def cell(runs, margin_pp=noise.MARGIN_PP):
    trials = frames.trials(runs)
    settings = settings_of(runs, margin_pp)
    return settings, frames.histories(runs, trials), figures.Legend.of(settings)


RUNS = [run(seed=0, acc=0.90), run(seed=1, acc=0.91),
        run("periodic", "fp8_e4m3", "fp8_e5m2", acc=0.89, comm=4, flops=3e8, args={"period": 3}, modes=(0, 1, 2)),
        run("loss_threshold", "fp16", "fp16", acc=0.70, comm=50, flops=5e8, args={"threshold": 0.1}, modes=(0, 1, 0))]


@pytest.fixture(autouse=True)
def theme():
    figures.setup()
    yield
    plt.close("all")


def test_pareto_draws_both_definitions_with_front_baseline_and_legend_outside(tmp_path):
    settings, _, legend = cell(RUNS)
    fig = figures.pareto(settings, legend, "vgg11")
    left, right = fig.axes
    assert left.get_xscale() == "log" and "MB" in left.get_xlabel() and "%" in left.get_ylabel()
    front = left.lines[0]
    assert list(front.get_ydata()) == pytest.approx([89, 90.5, 90.5])  # cheapest first, then the baseline
    assert right.get_legend().get_bbox_to_anchor().x0 > right.bbox.x1 - 1  # outside the data
    labels = [t.get_text() for t in right.get_legend().get_texts()]
    # fp32/fp32 and fp16/fp16 share the "cast" marker; fp8_e4m3/fp8_e5m2 has the "fp8" one.
    assert {"always", "periodic", "loss_threshold", "codec family (up/down)", "cast", "fp8", "Pareto front (means)",
            "baseline - 0.5 pp"} <= set(labels)
    assert not {"fp32/fp32", "fp16/fp16"} & set(labels)
    paths = figures.save(fig, tmp_path / "p", "sweep s")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert Image.open(paths[0]).info["Description"] == "sweep s" and paths[1].stat().st_size > 1000


def test_flops_modes_and_curves_draw_from_the_front():
    settings, history, legend = cell(RUNS)
    assert "GFLOP" in figures.flops(settings, legend, "t").axes[0].get_xlabel()
    modes = figures.modes(settings, history, "t").axes[0]
    assert [t.get_text() for t in modes.get_yticklabels()] == [
        "always, fp32, seed 0 of 2", "periodic(period=3), fp8_e4m3/fp8_e5m2"]
    curves = figures.curves(settings, history, "t").axes[0]
    assert [t.get_text() for t in curves.get_legend().get_texts()] == [
        "always, fp32 (baseline)", "periodic(period=3), fp8_e4m3/fp8_e5m2"]


def test_the_pareto_figure_shows_means_without_error_bars_and_the_margin_line():
    runs = [*trial(accs=(0.90, 0.92, 0.94)), *trial("periodic", accs=(0.5,), comm=4, args={"period": 3})]
    settings, _, legend = cell(runs, margin_pp=1.5)
    left = figures.pareto(settings, legend, "t").axes[0]
    assert [c for c in left.collections if isinstance(c, LineCollection)] == []
    dotted = [line for line in left.lines if line.get_linestyle() == ":"]
    assert [list(line.get_ydata()) for line in dotted] == [[92 - 1.5, 92 - 1.5]]


BASE = (0.91, 0.93, 0.92)


def tracking(deltas, comm, period, **fields):
    """A periodic trial whose seed k reaches the baseline's seed k plus deltas[k] pp."""
    return trial("periodic", "fp8_e4m3", "fp8_e5m2", accs=tuple(b + d / 100 for b, d in zip(BASE, deltas)), comm=comm,
                 args={"period": period}, **fields)


DECISIONS = [*trial(accs=BASE, comm=100),
             *tracking((-0.10, 0.05, 0.02), 20, 3),  # 5x, non-inferior
             *tracking((0.18, 1.53, 0.05), 10, 5),  # 10x, undecided: [-0.79, +1.97]
             *tracking((-2.1, -2.0, -1.9), 4, 9),  # 25x, inferior
             *trial("periodic", "fp8_e4m3", "fp8_e5m2", accs=(0.905,), comm=2, args={"period": 12})]  # 50x, one seed


def test_decisions_draw_the_paired_difference_and_interval_against_the_reduction_by_verdict():
    settings, _, _ = cell(DECISIONS)
    fig = decisions.decisions(settings, "t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "reduction" in ax.get_xlabel() and "pp" in ax.get_ylabel()
    # Error bars: the paired bounds, one set per verdict that has an interval (the one seed has none).
    bars = {tuple(c.get_color()[0][:3]): sorted(tuple(sorted(y for _, y in seg)) for seg in c.get_segments())
            for c in ax.collections if isinstance(c, LineCollection)}
    colour = {v: matplotlib.colors.to_rgb(c) for v, (c, _) in decisions.VERDICT_STYLE.items()}
    assert set(bars) == {colour[noise.NON_INFERIOR], colour[noise.UNDECIDED], colour[noise.INFERIOR]}
    assert bars[colour[noise.UNDECIDED]][0] == pytest.approx((-0.794946, 1.968279), abs=1e-3)
    assert bars[colour[noise.NON_INFERIOR]][0] == pytest.approx((-0.143812, 0.123812), abs=1e-4)
    assert bars[colour[noise.INFERIOR]][0] == pytest.approx((-2.168586, -1.831414), abs=1e-4)
    # Points, marker and colour by verdict; the baseline's star at (1x, 0).
    points = {tuple(c.get_facecolor()[0][:3]): c.get_offsets().tolist() for c in ax.collections
              if not isinstance(c, LineCollection) and len(c.get_offsets()) and len(c.get_facecolor())}
    assert points[colour[noise.NON_INFERIOR]] == [pytest.approx([5, -0.01])]
    assert points[colour[noise.UNKNOWN]] == [pytest.approx([50, -0.5])]
    # The margin: a dashed line at -0.5, one at 0, and the region below -0.5 shaded.
    assert sorted(line.get_ydata()[0] for line in ax.lines if line.get_linestyle() in ("--", "-")) == [-0.5, 0]
    (band,) = [p for p in ax.patches]
    assert band.get_extents().y1 == pytest.approx(ax.transData.transform((1, -0.5))[1], abs=1)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {*noise.VERDICTS, "margin: -0.5 pp", "90% CI, paired t"} <= set(legend)
    # Settings numbered in the plot, the largest reduction first, and named in the key below.
    assert [t.get_text() for t in ax.texts] == ["1", "2", "3", "4"]
    key = [" ".join(t.get_text().split()) for t in fig.legends[0].get_texts()]  # unwrapped
    assert key[0] == "1. periodic(period=12), fp8_e4m3/fp8_e5m2: 50x, -0.50 pp, 1 seed, noise unknown"
    assert key[2] == "3. periodic(period=5), fp8_e4m3/fp8_e5m2: 10x, +0.59 pp [-0.79, +1.97], 3 seeds, undecided"


def test_decisions_of_one_seed_per_setting_say_the_noise_is_unknown():
    settings, _, _ = cell([run(acc=0.90), run("periodic", acc=0.899, comm=5, args={"period": 3})])
    fig = decisions.decisions(settings, "t")
    ax = fig.axes[0]
    assert [c for c in ax.collections if isinstance(c, LineCollection)] == []
    assert "noise unknown" in fig.legends[0].get_texts()[0].get_text()


def test_decisions_without_a_baseline_or_with_many_settings_stay_readable():
    settings, _, _ = cell([run("periodic", args={"period": 3})])
    assert "no finished baseline" in decisions.decisions(settings, "t").axes[0].texts[0].get_text()
    many = [*trial(accs=BASE, comm=100)] + [r for i in range(30) for r in
                                            tracking((-0.1 * i, 0.05, 0.02), comm=100 / (2 + i), period=i + 2)]
    settings, _, _ = cell(many, margin_pp=1.0)
    fig = decisions.decisions(settings, "t")
    assert 0 < len(fig.axes[0].texts) <= decisions.MAX_DECISION_LABELS
    assert "of 30 settings" in fig.legends[0].get_title().get_text()
    assert "margin: -1 pp" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_modes_show_the_first_seed_of_each_setting_of_several():
    runs = trial(accs=(0.9, 0.92), seeds=(3, 1), seed_modes=[(0, 0, 0), (0, 1, 2)])
    settings, history, _ = cell(runs)
    ax = figures.modes(settings, history, "t").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["always, fp32, seed 1 of 2"]
    assert ax.collections[0].get_array().ravel().tolist() == [0, 1, 2]


def test_a_single_run_without_baseline_still_draws():
    settings, history, legend = cell([run("periodic", args={"period": 3}, modes=(0, 1, 2))])
    for fig in (figures.pareto(settings, legend, "t"), figures.flops(settings, legend, "t"),
                figures.modes(settings, history, "t"), figures.curves(settings, history, "t")):
        assert fig.axes


def test_long_runs_and_large_fronts_stay_readable():
    modes = (0, 1, 2, 2, 2) * 40  # 200 epochs
    front = [run("periodic", acc=0.5 + i / 100, comm=1 + i, args={"period": i + 2}, modes=modes) for i in range(20)]
    runs = [run(modes=(0,) * 200), *front]
    settings, history, _ = cell(runs)
    ax = figures.modes(settings, history, "t").axes[0]
    assert len(ax.get_yticklabels()) == figures.MAX_TIMELINE_ROWS
    assert ax.collections[0].get_linewidth()[0] == 0
    assert len(figures.curves(settings, history, "t").axes[0].get_legend().get_texts()) == 1 + figures.MAX_CURVES


def test_gates_show_each_familys_best_setting_beside_the_papers_gate():
    fp8 = ("fp8_e4m3", "fp8_e5m2")

    def gate(threshold, signal="train", **fields):
        args = {"threshold": threshold, "reference": "last_full", "max_cached": 0, "signal": signal}
        return run("loss_threshold", *fp8, args=args, **fields)

    runs = [run(acc=0.90, comm=100),
            gate(0.1, acc=0.899, comm=20, modes=(0, 1, 0)),  # the paper's gate, within 0.5 pp
            gate(0.3, acc=0.80, comm=5, modes=(0, 1, 2)),  # cheaper but 10 pp down: not its best
            gate(0.1, "val", acc=0.90, comm=10, modes=(0, 1, 2), options={"val_fraction": "0.1"}),
            gate(0.1, acc=0.70, comm=8, modes=(0, 1, 2), options={"cache_mixup": "0.2", "cache_views": "1"}),
            run("periodic", *fp8, acc=0.895, comm=30, args={"period": 3}, modes=(0, 1, 2))]
    settings, history, _ = cell(runs)
    ax = figures.gates(settings, history, "t").axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert max(len(line) for label in labels for line in label.split("\n")) <= figures.TIMELINE_LABEL_CHARS
    assert [label.replace("\n", " ") for label in labels] == [
        "loss_threshold: loss_threshold(signal=train, threshold=0.1), fp8_e4m3/fp8_e5m2 (5x, -0.1 pp, noise unknown)",
        "loss_threshold +cache_mixup: loss_threshold(signal=train, threshold=0.1, cache_mixup=0.2), "
        "fp8_e4m3/fp8_e5m2 (12.5x, -20.0 pp, noise unknown)",  # none within 0.5 pp: the most accurate
        "loss_threshold +signal=val: loss_threshold(signal=val, threshold=0.1, val_fraction=0.1), "
        "fp8_e4m3/fp8_e5m2 (10x, +0.0 pp, noise unknown)",
        "periodic: periodic(period=3), fp8_e4m3/fp8_e5m2 (3.33x, -0.5 pp, noise unknown)"]
    assert ax.collections[0].get_array().reshape(4, 3).tolist() == [[0, 1, 0], [0, 1, 2], [0, 1, 2], [0, 1, 2]]


def test_long_setting_names_in_the_curves_legend_do_not_collapse_the_plot(tmp_path):
    """Bug: two legend columns of 100-character setting names were wider than the figure, and the
    constrained layout gave the axes no room (matplotlib warned, and the plot shrank to a sliver)."""
    variants = [({"threshold": 0.1, "max_cached": 0, "signal": "train"}, {"refresh_threshold": "0.05", "cache_views": "2"}),
                ({"threshold": 0.2, "max_cached": 2, "signal": "val"}, {"cache_mixup": "0.2", "val_fraction": "0.1"}),
                ({"threshold": 0.3, "max_cached": 3, "signal": "train"}, {"cache_noise": "0.1", "cache_views": "3"})]
    runs = [run(seed=0, acc=0.90), run(seed=1, acc=0.91)] + [
        run("loss_threshold", "mxfp6_e3m2", "mxfp6_e3m2", acc=0.895 - i / 100, comm=6 - i, args=args, options=options,
            modes=(0, 1, 2)) for i, (args, options) in enumerate(variants)]
    settings, history, _ = cell(runs)
    fig = figures.curves(settings, history, "t")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert max(len(line) for text in texts for line in text.split("\n")) <= 104 and len(texts) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when the layout collapses the axes
        figures.save(fig, tmp_path / "c", "sweep s")
    width, height = fig.axes[0].get_window_extent().size
    assert width > fig.get_figwidth() * fig.dpi / 2 and height > 100  # the plot keeps most of the figure

