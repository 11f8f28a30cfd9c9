"""findings.md: each setting's accuracy, paired comparison and reduction, the baseline first, the largest
reduction next."""

from reports import findings, frames
from tests.reports_tests.runs import settings, trial

BASE = (0.60, 0.62, 0.61)


def test_each_setting_is_a_row_with_its_paired_difference_verdict_rho_reduction_and_modes():
    runs = (trial(accs=BASE, comm=100.0, modes=(0, 0, 0))
            + trial("loss_threshold", "fp8_e4m3", "fp8_e5m2", accs=(0.6005, 0.6215, 0.6100), comm=10.0,
                    modes=(0, 1, 2), args={"threshold": 0.1})
            + trial("loss_threshold", "fp8_e4m3", "fp8_e5m2", accs=(0.579, 0.600, 0.591), comm=4.0, modes=(0, 2, 2),
                    args={"threshold": 0.1}, options={"cache_noise": "0.1"})
            + trial("periodic", accs=(0.615,), comm=2.0, args={"period": 3}))
    trials = frames.trials(runs)
    text = findings.markdown(settings(runs), frames.cells(trials))
    lines = text.splitlines()
    assert lines[0].startswith("Paired against each cell's baseline") and "ttost_paired" in lines[0]
    assert lines[2] == f"### {frames.cells(trials)['title'][0]}"
    assert lines[4] == ("| setting | codec | seeds (paired) | accuracy, mean ± sd | Δ accuracy, pp, paired [90% CI] "
                        "| verdict at 0.5 pp | ρ | mean within 0.5 pp | comm. reduction "
                        "| epochs FULL / FORWARD / CACHED |")
    assert lines[6] == ("| always | fp32/fp32 | 3 | 61.00% ± 1.00 | reference | reference |  | reference | 1.00x "
                        "| 3 / 0 / 0 |")
    # One seed, paired with the baseline's seed 0: +1.5 pp, no interval.
    assert lines[7] == ("| periodic(period=3) | fp32/fp32 | 1 (1) | 61.50% | +1.50 | noise unknown |  | yes | 50.00x "
                        "| 3 / 0 / 0 |")
    # differences -2.1, -2.0, -1.9 pp: -2 -/+ 2.919986 * 0.1 / sqrt(3) = -2 -/+ 0.17;
    # rho = stats.pearsonr([57.9, 60.0, 59.1], [60, 62, 61]).statistic = 0.9966
    assert lines[8] == ("| loss_threshold(cache_noise=0.1) | fp8_e4m3/fp8_e5m2 | 3 (3) | 59.00% ± 1.05 "
                        "| -2.00 [-2.17, -1.83] | inferior | 1.00 | no | 25.00x | 1 / 0 / 2 |")
    # differences +0.05, +0.15, 0.00 pp: +0.0667 -/+ 2.919986 * 0.076376 / sqrt(3) = +0.0667 -/+ 0.1288
    assert lines[9] == ("| loss_threshold(threshold=0.1) | fp8_e4m3/fp8_e5m2 | 3 (3) | 61.07% ± 1.05 "
                        "| +0.07 [-0.06, +0.20] | non-inferior | 1.00 | yes | 10.00x | 1 / 1 / 1 |")
    assert len(lines) == 10


def test_adaptive_seeds_name_their_interval_by_its_level():
    runs = (trial(accs=BASE, comm=100.0, plan=(2, 5))
            + trial("periodic", accs=(0.6005, 0.6215, 0.6100), comm=10.0, args={"period": 3}, plan=(2, 5)))
    lines = findings.markdown(settings(runs), frames.cells(frames.trials(runs))).splitlines()
    assert "Δ accuracy, pp, paired [97.5% CI]" in lines[4]  # 4 looks: 1 - 2 x 0.05 / 4
