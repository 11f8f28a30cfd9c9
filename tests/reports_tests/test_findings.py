"""findings.md: each setting's accuracy, interval and reduction, the baseline first, the largest reduction next."""

from reports import findings, frames
from tests.reports_tests.runs import trial


def test_each_setting_is_a_row_with_its_spread_interval_reduction_and_modes():
    runs = (trial(accs=(0.60, 0.62, 0.61), comm=100.0, modes=(0, 0, 0))
            + trial("loss_threshold", "fp8_e4m3", "fp8_e5m2", accs=(0.61, 0.61, 0.61), comm=10.0, modes=(0, 1, 2),
                    args={"threshold": 0.1})
            + trial("loss_threshold", "fp8_e4m3", "fp8_e5m2", accs=(0.58, 0.59, 0.60), comm=4.0, modes=(0, 2, 2),
                    args={"threshold": 0.1}, options={"cache_noise": "0.1"}))
    trials = frames.trials(runs)
    text = findings.markdown(frames.settings(trials), frames.cells(trials))
    lines = text.splitlines()
    assert lines[0] == f"### {frames.cells(trials)['title'][0]}"
    assert lines[2] == ("| setting | codec | seeds | accuracy, mean ± sd | Δ accuracy, pp [95% CI] | comm. reduction "
                        "| within 0.5 pp | epochs FULL / FORWARD / CACHED |")
    assert lines[4] == "| always | fp32/fp32 | 3 | 61.00% ± 1.00 | reference | 1.00x | reference | 3 / 0 / 0 |"
    # 0.59 - 0.61 = -2 pp; sds 1 pp each side, 3 seeds: Welch t(4 df) = 2.776 x sqrt(2/3) = 2.267
    assert lines[5] == ("| loss_threshold(cache_noise=0.1) | fp8_e4m3/fp8_e5m2 | 3 | 59.00% ± 1.00 "
                        "| -2.00 [-4.27, +0.27] | 25.00x | no | 1 / 0 / 2 |")
    # no spread on one side: the interval is the baseline's alone, t(2 df) = 4.303 x 1/sqrt(3) = 2.484
    assert lines[6] == ("| loss_threshold(threshold=0.1) | fp8_e4m3/fp8_e5m2 | 3 | 61.00% ± 0.00 "
                        "| +0.00 [-2.48, +2.48] | 10.00x | yes | 1 / 1 / 1 |")
    assert len(lines) == 7
