"""The time-to-accuracy figure: drawn from runs that modelled a link, for the link they name."""

import matplotlib.pyplot as plt
import pytest

from bench import names
from reports import figures, frames
from tests.reports_tests.runs import run, settings

LINK = {"uplink_mbit": "10.0", "downlink_mbit": "50.0", "rtt_ms": "20.0"}


def timed(*args, seconds, **kwargs):
    r = run(*args, **kwargs)
    r["params"] |= LINK
    r["history"][names.TOTAL_S] = [(e, s) for e, s in enumerate(seconds)]
    return r


def test_accuracy_is_drawn_against_the_cumulative_modelled_time_on_the_named_link():
    runs = [timed(acc=0.9, seconds=(60, 60, 60)),
            timed("periodic", "fp8_e4m3", "fp8_e5m2", acc=0.89, comm=4, args={"period": 3}, modes=(0, 1, 2),
                  seconds=(30, 12, 6))]
    trials = frames.trials(runs)
    links = frames.links(runs, trials)
    assert links == {"vgg11-c2-clients1": "10 Mbit/s up, 50 Mbit/s down, 20 ms RTT"}
    assert frames.links([run()], frames.trials([run()])) == {}  # no link model, no figure
    figures.setup()
    fig = figures.time_to_accuracy(settings(runs), frames.histories(runs, trials), links["vgg11-c2-clients1"], "t")
    ax = fig.axes[0]
    assert "10 Mbit/s up, 50 Mbit/s down, 20 ms RTT" in ax.get_xlabel()
    baseline, periodic = ax.lines[:2]
    assert list(baseline.get_xdata()) == pytest.approx([1, 2, 3])  # minutes, summed over the epochs
    assert list(periodic.get_xdata()) == pytest.approx([0.5, 0.7, 0.8])
    assert list(periodic.get_ydata()) == pytest.approx([89 / 3, 89 * 2 / 3, 89])
    plt.close(fig)
