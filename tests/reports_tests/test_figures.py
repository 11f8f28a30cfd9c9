"""Smoke tests of the figures: they draw what they should from small frames and save PNG and SVG."""

import math

import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection
import pytest
from PIL import Image

from reports import figures, frames
from tests.reports_tests.runs import run, trial


def cell(runs):
    trials = frames.trials(runs)
    settings = frames.settings(trials)
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
            "95% CI over seeds"} <= set(labels)
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


def test_error_bars_are_the_t_interval_of_the_mean_and_one_seed_gets_none():
    runs = [*trial(accs=(0.90, 0.92, 0.94)), *trial("periodic", accs=(0.5,), comm=4, args={"period": 3})]
    settings, _, legend = cell(runs)
    left = figures.pareto(settings, legend, "t").axes[0]
    bars = [c for c in left.collections if isinstance(c, LineCollection)]
    assert len(bars) == 1  # the baseline's; the one-seed point has none
    (_, low), (_, high) = bars[0].get_segments()[0]
    half = 4.302652729749464 * 2 / math.sqrt(3)  # t_{0.975,2} * 2 pp / sqrt(3)
    assert (low, high) == pytest.approx((92 - half, 92 + half))


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
        "loss_threshold: loss_threshold(signal=train, threshold=0.1), fp8_e4m3/fp8_e5m2 (5x, -0.1 pp)",
        "loss_threshold +cache_mixup: loss_threshold(signal=train, threshold=0.1, cache_mixup=0.2), "
        "fp8_e4m3/fp8_e5m2 (12.5x, -20.0 pp)",  # none within 0.5 pp: the most accurate
        "loss_threshold +signal=val: loss_threshold(signal=val, threshold=0.1, val_fraction=0.1), "
        "fp8_e4m3/fp8_e5m2 (10x, +0.0 pp)",
        "periodic: periodic(period=3), fp8_e4m3/fp8_e5m2 (3.33x, -0.5 pp)"]
    assert ax.collections[0].get_array().reshape(4, 3).tolist() == [[0, 1, 0], [0, 1, 2], [0, 1, 2], [0, 1, 2]]
