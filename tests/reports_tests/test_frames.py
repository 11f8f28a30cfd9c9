"""Runs -> frames: what counts as a trial, seed values, reduction factors, paired comparisons and the margin."""

import math

import pytest

from bench import names
from reports import frames, noise
from tests.reports_tests.runs import run, settings, trial


def test_trials_keep_finished_trial_runs_only_with_codec_and_setting_labels():
    runs = [run(), run("periodic", "fp8_e4m3", "fp8_e5m2", args={"period": 3}), run(status="FAILED"),
            run(role="study")]
    trials = frames.trials(runs)
    assert len(trials) == 2
    assert trials["codec"].tolist() == ["fp32/fp32", "fp8_e4m3/fp8_e5m2"]
    assert trials["setting"].tolist() == ["always", "periodic(period=3)"]
    assert trials["baseline"].tolist() == [True, False]
    assert trials["clients"].tolist() == [1, 1] and math.isnan(trials["train_subset"].iloc[0])


def test_an_engine_option_under_always_is_a_setting_of_its_own_not_a_second_baseline():
    """Runs recorded before sweeps reset inert options can log cache_mixup under always; two rows
    flagged baseline in one cell broke the report (pandas: non-unique index)."""
    runs = [run(acc=0.90), run(acc=0.91, options={"cache_mixup": "0.2"})]
    s = settings(runs)
    assert s["baseline"].tolist() == [True, False]
    assert s["comm_x"].tolist() == [1.0, 1.0]


def test_a_run_without_a_study_tag_is_placed_in_a_cell_named_from_its_fields():
    r = run()
    del r["tags"]["study"]
    assert frames.trials([r])["study"].tolist() == ["vgg11-c2-clients1"]


def test_seeds_are_averaged_and_reductions_are_against_the_baseline():
    runs = [run(seed=0, acc=0.90, comm=100), run(seed=1, acc=0.92, comm=100),
            run("periodic", seed=0, acc=0.905, comm=25, flops=2.5e8, args={"period": 3}),
            run("periodic", seed=1, acc=0.905, comm=25, flops=2.5e8, args={"period": 3}),
            run("always", "fp8_e4m3", "fp8_e5m2", acc=0.80, comm=10)]
    s = settings(runs).set_index("setting", append=True)
    base = s[s["baseline"]].iloc[0]
    assert base["acc"] == pytest.approx(0.91) and base["seeds"] == 2 and base["acc_std"] == pytest.approx(0.01414, 1e-3)
    periodic = s.xs("periodic(period=3)", level="setting").iloc[0]
    assert periodic["comm_x"] == pytest.approx(4.0) and periodic["flops_x"] == pytest.approx(4.0)
    assert periodic["delta_pp"] == pytest.approx(-0.5) and periodic["within"]  # exactly 0.5 pp counts
    assert periodic["acc_std"] == 0 and periodic["seeds"] == 2
    fp8 = s[s["codec"] == "fp8_e4m3/fp8_e5m2"].iloc[0]
    assert fp8["comm_x"] == pytest.approx(10.0) and fp8["delta_pp"] == pytest.approx(-11.0) and not fp8["within"]


def test_a_cell_without_a_finished_baseline_has_no_reductions():
    s = settings([run("periodic", comm=25, args={"period": 3}), run(status="FAILED")])
    assert math.isnan(s["comm_x"].iloc[0]) and not s["within"].iloc[0]
    assert s["verdict"].iloc[0] == "" and s["paired_seeds"].iloc[0] == 0


def test_histories_are_tidy_and_cells_say_how_they_were_made():
    runs = [run(modes=(0, 1, 2)), run("periodic", args={"period": 3}, clients=5, study="other", modes=(0, 1, 2))]
    trials = frames.trials(runs)
    history = frames.histories(runs, trials)
    assert sorted(history["metric"].unique()) == ["mode", names.TEST_ACC]
    assert history[history["metric"] == "mode"].groupby("run_id")["value"].apply(list).tolist() == [[0, 1, 2]] * 2
    cells = frames.cells(trials)
    assert cells["title"].tolist() == ["vgg11, cut 2 · 1 client · cifar10 · 3 epochs",
                                       "vgg11, cut 2 · 5 clients, iid · cifar10 · 3 epochs"]
    assert cells[["git_commit", "seeds", "device"]].iloc[0].tolist() == ["abc123", "0", "cpu"]


def test_seed_runs_and_repeated_trials_are_not_points():
    baseline = trial(accs=(0.90, 0.92, 0.94))
    repeat = trial(accs=(0.90, 0.92, 0.94), tags={"duplicate_of": baseline[0]["tags"]["trial"]})
    trials = frames.trials([*baseline, *repeat])
    assert trials["run_id"].tolist() == [baseline[0]["run_id"]]
    assert trials[["seeds", "seed_list"]].iloc[0].tolist() == [3, "0,1,2"]
    assert trials["acc_std"].iloc[0] == pytest.approx(0.02)


def test_a_setting_of_three_seeds_carries_the_t_interval_of_its_mean():
    s = settings(trial(accs=(0.90, 0.92, 0.94))).iloc[0]
    half = 4.302652729749464 * 0.02 / math.sqrt(3)  # t_{0.975,2} * std / sqrt(n)
    assert s["seeds"] == 3 and s["acc"] == pytest.approx(0.92)
    assert (s["acc_ci_low"], s["acc_ci_high"]) == pytest.approx((0.92 - half, 0.92 + half))
    assert (s["paired_ci_low"], s["paired_ci_high"], s["verdict"], s["paired_seeds"]) == (0, 0, "reference", 3)


def test_seed_values_are_one_row_per_trial_and_seed():
    runs = [*trial(accs=(0.90, 0.92, 0.94), seeds=(0, 1, 2)), run("periodic", seed=4, acc=0.5, args={"period": 3})]
    trials = frames.trials(runs)
    values = frames.seed_values(runs, trials)
    assert values[["run_id", "seed"]].values.tolist() == [[runs[0]["run_id"], 0], [runs[0]["run_id"], 1],
                                                          [runs[0]["run_id"], 2], [runs[4]["run_id"], 4]]
    assert values["acc"].tolist() == pytest.approx([0.90, 0.92, 0.94, 0.5])


def test_the_difference_to_the_baseline_is_paired_seed_by_seed():
    # The baseline's seeds spread by 2 pp; the setting follows each of them.
    base = (0.91, 0.93, 0.92)
    near_d, far_d = (0.18, 1.53, 0.05), (-2.1, -2.0, -1.9)  # pp, per seed
    runs = [*trial(accs=base),
            *trial("periodic", accs=tuple(b + d / 100 for b, d in zip(base, near_d)), comm=25, args={"period": 3}),
            *trial("periodic", accs=tuple(b + d / 100 for b, d in zip(base, far_d)), comm=10, args={"period": 9}),
            *trial("periodic", accs=(0.915,), comm=50, args={"period": 2})]
    s = settings(runs).set_index("setting")
    near, far, single = s.loc["periodic(period=3)"], s.loc["periodic(period=9)"], s.loc["periodic(period=2)"]
    # test_noise's worked example: mean 0.5867 pp, bounds 0.5867 -/+ 1.3816
    assert near["paired_seeds"] == 3 and near["paired_delta_pp"] == pytest.approx(0.586667, abs=1e-4)
    assert (near["paired_ci_low"], near["paired_ci_high"]) == pytest.approx((-0.794946, 1.968279), abs=1e-3)
    assert near["paired_sd_pp"] == pytest.approx(0.819532, abs=1e-4)
    assert near["verdict"] == noise.UNDECIDED and near["within"] and near["margin_pp"] == 0.5
    # sd 0.1 pp: -2 -/+ 2.919986 * 0.1 / sqrt(3) = -2 -/+ 0.168586
    assert (far["paired_ci_low"], far["paired_ci_high"]) == pytest.approx((-2.168586, -1.831414), abs=1e-4)
    # rho: stats.pearsonr([88.9, 91.0, 90.1], [91, 93, 92]).statistic = 0.996616
    assert far["verdict"] == noise.INFERIOR and far["rho"] == pytest.approx(0.996616, abs=1e-5)
    # One seed: paired with the baseline's seed 0 only, no interval.
    assert single["paired_seeds"] == 1 and single["paired_delta_pp"] == pytest.approx(0.5)
    assert math.isnan(single["paired_ci_low"]) and single["verdict"] == noise.UNKNOWN
    assert single["delta_pp"] == pytest.approx(-0.5) and single["within"]  # the mean rule: 91.5 vs 92.0


def test_a_margin_decides_the_verdicts_and_the_mean_rule():
    base = (0.91, 0.93, 0.92)
    runs = [*trial(accs=base), *trial("periodic", accs=tuple(b - 0.008 for b in base), comm=25, args={"period": 3})]
    assert settings(runs, margin_pp=0.5).iloc[1][["verdict", "within"]].tolist() == [noise.INFERIOR, False]
    wide = settings(runs, margin_pp=1.0).iloc[1]
    assert wide[["verdict", "within", "margin_pp"]].tolist() == [noise.NON_INFERIOR, True, 1.0]


def test_adaptive_seeds_widen_the_paired_interval_by_their_looks():
    base = (0.81, 0.83, 0.82)
    accs = tuple(b + d / 100 for b, d in zip(base, (0.18, 1.53, 0.05)))
    runs = [*trial(accs=base, plan=(3, 6)), *trial("periodic", accs=accs, comm=25, args={"period": 3}, plan=(3, 6))]
    s = settings(runs).iloc[1]
    assert s["looks"] == 4  # seeds 3, 4, 5, 6: each bound at 0.05 / 4 (test_noise: -2.349438, 3.522771)
    assert (s["paired_ci_low"], s["paired_ci_high"]) == pytest.approx((-2.349438, 3.522771), abs=1e-3)
    assert settings(runs[:1] + trial("periodic", accs=accs, comm=25, args={"period": 3})).iloc[1]["looks"] == 1


def test_a_setting_is_paired_over_the_seeds_it_shares_with_the_baseline():
    runs = [*trial(accs=(0.90, 0.92, 0.94, 0.96)), *trial("periodic", accs=(0.91, 0.92), seeds=(1, 3), comm=25,
                                                          args={"period": 3})]
    s = settings(runs).iloc[1]
    assert s["seeds"] == 2 and s["paired_seeds"] == 2 and s["seed_list"] == "1,3"
    assert s["paired_delta_pp"] == pytest.approx(-2.5)  # (91 - 92 + 92 - 96) / 2
    assert s["delta_pp"] == pytest.approx(-1.5)  # 91.5 against the baseline's 93 over all four


def test_trials_of_one_setting_pool_their_seeds_and_a_repeated_seed_counts_once():
    # Runs from before seeds existed: one trial per seed; trial 3 trained seed 1 again.
    runs = [run(seed=0, acc=0.90), run(seed=1, acc=0.91), run(seed=2, acc=0.93), run(seed=1, acc=0.50)]
    s = settings(runs).iloc[0]
    assert s["seeds"] == 3 and s["seed_list"] == "0,1,2" and len(s["run_ids"]) == 3
    assert s["acc"] == pytest.approx(0.9133333, abs=1e-7) and s["acc_std"] == pytest.approx(math.sqrt(7e-4 / 3))


def test_continuous_arguments_are_rounded_in_labels_and_kept_whole_in_policy_args():
    runs = [run("loss_threshold", args={"threshold": 0.040013105825410386, "reference": "last_full"}),
            run("loss_threshold", args={"threshold": 0.31, "reference": "last_full"}),
            run("periodic", args={"period": 12}), run("periodic", args={"period": 150.5})]
    trials = frames.trials(runs)
    assert trials["setting"].tolist() == ["loss_threshold(threshold=0.04)", "loss_threshold(threshold=0.31)",
                                          "periodic(period=12)", "periodic(period=150)"]
    assert trials["policy_args"].iloc[0] == "reference=last_full, threshold=0.040013105825410386"


def test_histories_keep_each_seed_apart_from_the_trial_means():
    runs = trial(accs=(0.6, 0.9), seed_modes=[(0, 1, 2), (0, 0, 1)])
    history = frames.histories(runs, frames.trials(runs))
    means = history[~history["per_seed"]]
    assert means["metric"].unique().tolist() == [names.TEST_ACC]
    assert means["value"].tolist() == pytest.approx([0.25, 0.5, 0.75])  # (0.6 + 0.9) / 2 * (epoch + 1) / 3
    modes = history[history["metric"] == "mode"].groupby("seed")["value"].apply(list)
    assert modes.to_dict() == {0: [0, 1, 2], 1: [0, 0, 1]}
    assert set(history["trial_run"]) == {runs[0]["run_id"]}


def test_an_accuracy_interval_stops_at_zero_and_one():
    # 0.02, 0.20: mean 0.11, std 0.127279; t_{0.975,1} = 12.706 -> 0.11 -/+ 1.1435, beyond both ends
    s = settings(trial(accs=(0.02, 0.20))).iloc[0]
    assert (s["acc_ci_low"], s["acc_ci_high"]) == (0.0, 1.0)


def test_engine_options_switched_on_make_a_setting_and_a_family_of_their_own():
    args = {"threshold": 0.1, "reference": "last_full", "max_cached": 0, "signal": "train"}
    off = {"val_fraction": "0.0", "cache_mixup": "0.0", "cache_noise": "0.0", "cache_views": "1",
           "refresh_threshold": "None"}
    runs = [run(), run("loss_threshold", args=args, options=off),
            run("loss_threshold", args=args | {"max_cached": 3}, options=off | {"refresh_threshold": "0.05"}),
            run("loss_threshold", args=args, options=off | {"cache_views": "2", "cache_noise": "0.1"})]
    frame = settings(runs)
    assert frame["family"].tolist() == ["always", "loss_threshold", "loss_threshold +max_cached +refresh_threshold",
                                           "loss_threshold +cache_noise +cache_views"]
    assert frame["setting"].tolist()[1:] == [
        "loss_threshold(max_cached=0)", "loss_threshold(max_cached=3, refresh_threshold=0.05)",
        "loss_threshold(max_cached=0, cache_noise=0.1, cache_views=2)"]
