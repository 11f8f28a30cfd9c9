"""Runs (plain dicts from bench.tracking.load_runs) -> tidy pandas frames.

trials:    one row per FINISHED trial run: the cell, the setting (policy with its arguments and
           the engine options it switched on, codec = "quant_up/quant_down"), its gate family
           (labels.family), its seeds, the final metrics (means over the seeds, with their standard
           deviations) and the provenance tags. Seed runs are never trials.
cells:     one row per cell (study): its fixed fields, a title, and how its runs were made.
histories: one row per (run, metric, epoch) of the per-epoch metrics of trials and their seed runs.
settings:  one row per (cell, setting), seeds averaged, with confidence intervals, reduction
           factors against the cell's baseline (always, fp32/fp32) and the accuracy change in
           percentage points with its confidence interval.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bench import config, names
from bench.errors import UsageError
from bench.wire.linkmodel import LinkModel
from reports import labels, noise
from reports.codecs import codec_family

# policy, quant_up, quant_down of the baseline (bench.config.BASELINE): every reduction is against it
BASELINE = tuple(config.BASELINE[k] for k in ("policy", "quant_up", "quant_down"))

# final metric -> column
FINAL = {
    names.FINAL_TEST_ACC: "acc",
    names.FINAL_COMM_BYTES: "comm_bytes",
    names.FINAL_TOTAL_BYTES: "total_bytes",
    names.FINAL_CLIENT_FLOPS: "client_flops",
    names.FINAL_UP_BYTES: "up_bytes",
    names.FINAL_DOWN_BYTES: "down_bytes",
    names.FINAL_LABEL_BYTES: "label_bytes",
    names.FINAL_SYNC_BYTES: "sync_bytes",
    names.FINAL_FULL_EPOCHS: "full_epochs",
    names.FINAL_FORWARD_EPOCHS: "forward_epochs",
    names.FINAL_CACHED_EPOCHS: "cached_epochs",
}
CELL = ["model", "width", "cut", "dataset", "clients", "partition", "epochs", "train_subset"]
NUMERIC = ["width", "cut", "clients", "epochs", "train_subset", "seed"]
PROVENANCE = list(names.PROVENANCE)
# What the seeds of one setting are averaged over; everything else is fixed within a cell.
SETTING = ["study", "policy", "policy_args", "setting", "family", "quant_up", "quant_down", "codec"]
# Engine options that make a setting of their own (the validation slice, bench/layouts/: the cache),
# with the value that means "off", as RunConfig declares them: a run that switches one on shows it
# among its setting's arguments.
ENGINE_OPTIONS = config.mechanisms()
# What a run's params hold besides RunConfig's fields: the seeds (names.SEED_PARAMS), and the policy's
# and codecs' arguments under these prefixes.
ARGUMENT_PREFIXES = ("policy.", "quant_up.", "quant_down.")


def trials(runs: list[dict]) -> pd.DataFrame:
    """One row per FINISHED trial: a run that is neither a study run nor a seed run (splitbench.role
    study / seed) and does not repeat an earlier trial (tag duplicate_of).

    A trial's final metrics are means over its seeds (param `seeds`, e.g. "0,1,2"; a run without it
    has one seed, param `seed`), with `<column>_std` the sample standard deviation over them (NaN
    with one seed). Columns: run_id, name, study, trial, CELL, seed (the first), seeds (how many),
    seed_list ("0,1,2"), looks (1, or the looks of adaptive seeds: params seeds_min and seeds_max),
    SETTING but study, FINAL columns and their _std, PROVENANCE, baseline.
    """
    rows = []
    for run in runs:
        tags, params = run["tags"], run["params"]
        if run["status"] != "FINISHED" or not is_trial(tags) or tags.get(names.DUPLICATE_OF):
            continue
        check_mechanisms(run)
        row = {"run_id": run["run_id"], "name": run["name"], "trial": tags.get(names.TRIAL)}
        row |= {k: params.get(k) for k in CELL + ["policy", "quant_up", "quant_down"]}
        row["partition"] = partition_label(params)
        seeds = _seeds(params)
        row |= {"seed": seeds[0] if seeds else np.nan, "seeds": len(seeds) or 1, "seed_list": ",".join(map(str, seeds))}
        row["looks"] = noise.looks(*(int(params[k]) if k in params else None for k in (names.SEEDS_MIN, names.SEEDS_MAX)))
        # A run logged outside a sweep has no study tag: its cell is named from its fixed fields.
        row["study"] = tags.get(names.STUDY) or f"{row['model']}-c{row['cut']}-clients{row['clients']}"
        args = sorted((k.removeprefix("policy."), v) for k, v in params.items() if k.startswith("policy."))
        options = sorted((k, params[k]) for k in ENGINE_OPTIONS if _switched_on(k, params.get(k)))
        row["family"] = labels.family(row["policy"], dict(args), [k for k, _ in options])
        args += options
        row["policy_args"] = ", ".join(f"{k}={v}" for k, v in args)
        row["_args"] = dict(args)
        row["codec"] = labels.codec_label(_codec_with_args(params, "quant_up"), _codec_with_args(params, "quant_down"))
        row |= {col: run["metrics"].get(name, np.nan) for name, col in FINAL.items()}
        row |= {f"{col}_std": run["metrics"].get(names.std(name), np.nan) for name, col in FINAL.items()}
        row |= {k: tags.get(k, "unknown") for k in PROVENANCE}
        rows.append(row)
    stds = [f"{col}_std" for col in FINAL.values()]
    columns = ["run_id", "name", "study", "trial", *CELL, "seed", "seeds", "seed_list", "looks", *SETTING[1:],
               *FINAL.values(),
               *stds, *PROVENANCE]
    frame = pd.DataFrame(rows, columns=columns + ["_args"])
    frame["setting"] = labels.setting_labels(frame["policy"], frame.pop("_args"))
    for col in NUMERIC:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")  # "None" (no subset) -> NaN
    # The baseline switches nothing on: a run that logged an engine option under always (recorded
    # before sweeps reset inert options) is a setting of its own, not a second baseline.
    frame["baseline"] = [(p, u, d) == BASELINE and not a for p, u, d, a in
                         zip(frame["policy"], frame["quant_up"], frame["quant_down"], frame["policy_args"])]
    # MLflow lists the newest run first; cells by their fields (1 client before 10), trials as enqueued.
    frame["trial"] = pd.to_numeric(frame["trial"], errors="coerce")
    return frame.sort_values([*CELL, "study", "trial", "seed"]).reset_index(drop=True)


def check_mechanisms(run: dict) -> None:
    """UsageError naming what the report cannot name in `run`: a codec without a family it can read
    (reports.codecs), or a param that is neither a RunConfig field nor one of the params a run logs
    beside them, an engine option (from another version, say) whose meaning for a setting this
    report does not know. Its policy is looked up by labels.family."""
    for direction in ("quant_up", "quant_down"):
        codec_family(run["params"].get(direction))
    known = {f.name for f in dataclasses.fields(config.RunConfig)} | set(names.SEED_PARAMS)
    for name in run["params"]:
        if name not in known and not name.startswith(ARGUMENT_PREFIXES):
            raise UsageError(f"run {run['name']} ({run['run_id']}) logs param {name!r}, which no RunConfig field "
                             "of this splitbench is: the report cannot tell whether it makes a setting of its own")


def _codec_with_args(params: dict, direction: str) -> str:
    """The codec of `direction` with the arguments the run gave it other than their defaults, e.g.
    `topk(error_feedback=True, k=0.05)`: two settings that differ in a codec's argument are two
    settings. The stochastic-rounding seed, which follows the run's seed, is no argument of a setting."""
    from quantizers import codec_params

    name = params[direction]
    given = {k.removeprefix(f"{direction}."): v for k, v in params.items() if k.startswith(f"{direction}.")}
    changed = {k: v for k, v in sorted(given.items())
               if k != "seed" and k in (defaults := codec_params(name)) and labels.value(v) != labels.value(str(defaults[k]))}
    return name + (f"({', '.join(f'{k}={labels.value(v)}' for k, v in changed.items())})" if changed else "")


def is_trial(tags: dict) -> bool:
    """Whether a run is a trial's (or a run logged outside a sweep): neither a study's parent run nor a seed run."""
    return tags.get(names.ROLE) not in (names.STUDY_ROLE, names.SEED_ROLE)


def _is_seed_run(run: dict) -> bool:
    return run["status"] == "FINISHED" and run["tags"].get(names.ROLE) == names.SEED_ROLE


def partition_label(params: dict) -> str:
    """How the run split its training set among the clients ("iid", "Dirichlet α=0.1", "2 classes
    each"); a run logged before partitions existed was IID."""
    from bench.partition import Partition

    def number(name, kind):
        value = params.get(name)
        return None if value in (None, "None") else kind(value)

    return Partition(params.get("partition") or "iid", number("partition_alpha", float),
                     number("classes_per_client", int)).label()


def partition_runs(trial_frame: pd.DataFrame) -> dict[str, str]:
    """study -> the run whose partition.json stands for the cell's: its baseline's (else its first
    trial's) run; every setting of a cell trains seed k on the same shards."""
    out = {}
    for study, group in trial_frame.groupby("study", sort=False):
        base = group[group["baseline"]]
        out[study] = (base if len(base) else group).iloc[0]["run_id"]
    return out


def links(runs: list[dict], trial_frame: pd.DataFrame) -> dict[str, str]:
    """study -> the link its runs modelled (e.g. "10 Mbit/s up, 50 Mbit/s down, 20 ms RTT"), for the
    cells whose runs logged a link model (params uplink_mbit, downlink_mbit, rtt_ms)."""
    study = dict(zip(trial_frame["run_id"], trial_frame["study"]))
    out = {}
    for run in runs:
        p = run["params"]
        if run["run_id"] in study and p.get("uplink_mbit") not in (None, "None"):
            rtt = p.get("rtt_ms")
            link = LinkModel(float(p["uplink_mbit"]), float(p["downlink_mbit"]), float(rtt) if rtt not in (None, "None") else 0.0)
            out[study[run["run_id"]]] = link.name
    return out


def _switched_on(option: str, text: str | None) -> bool:
    """Whether a logged engine option differs from its "off" value ("None" and a missing param are off)."""
    if text is None or text == "None":
        return False
    off = ENGINE_OPTIONS[option]
    try:
        return off is None or float(text) != off
    except ValueError:
        return True


def best_of_families(cell: pd.DataFrame) -> pd.DataFrame:
    """Per gate family of one cell's settings (the baseline left out), its best setting: the fewest
    bytes (activations + gradients) among its non-inferior settings, else among those within the
    margin on means, else the most accurate. The paper's gate (labels.PAPER_GATE) first, then by
    bytes, fewest first."""
    rows = []
    for _, group in cell[~cell["baseline"]].groupby("family", sort=False):
        for kept in (group[group["verdict"] == noise.NON_INFERIOR], group[group["within"]]):
            if len(kept):
                rows.append(kept.nsmallest(1, "comm_bytes"))
                break
        else:
            rows.append(group.nlargest(1, "acc"))
    if not rows:
        return cell.iloc[:0]
    out = pd.concat(rows)
    out = out.assign(_paper=out["family"] != labels.PAPER_GATE).sort_values(["_paper", "comm_bytes"])
    return out.drop(columns="_paper")


def _seeds(params: dict) -> list[int]:
    """The seeds a run trained: param `seeds` ("0,1,2"), else (a run from before seeds) its one `seed`."""
    text = params.get(names.SEEDS) or params.get("seed") or ""
    return [int(s) for s in text.split(",") if s.strip().isdigit()]


def histories(runs: list[dict], trial_frame: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch metrics of the trials in `trial_frame` and of their seed runs.

    Columns: trial_run (the trial's run id), run_id (where the values were logged), study, seed,
    per_seed, metric, epoch, value. per_seed rows hold one seed's own history: a seed run's, or a
    trial's own when it has no finished seed run (one seed); a trial of several seeds logs means
    (per_seed False) and no `mode`.
    """
    study = dict(zip(trial_frame["run_id"], trial_frame["study"]))
    first = dict(zip(trial_frame["run_id"], trial_frame["seed"]))
    parent = {run["run_id"]: run["tags"].get(names.PARENT) for run in runs
              if _is_seed_run(run) and run["tags"].get(names.PARENT) in study}
    has_seeds = set(parent.values())
    rows = []
    for run in runs:
        if run["run_id"] in parent:
            trial, seed, per_seed = parent[run["run_id"]], float(run["tags"].get(names.SEED, "nan")), True
        elif run["run_id"] in study:
            trial, seed, per_seed = run["run_id"], first[run["run_id"]], run["run_id"] not in has_seeds
        else:
            continue
        rows += [(trial, run["run_id"], study[trial], seed, per_seed, metric, int(step), value)
                 for metric, points in run["history"].items() for step, value in points]
    return pd.DataFrame(rows, columns=["trial_run", "run_id", "study", "seed", "per_seed", "metric", "epoch", "value"])


def seed_values(runs: list[dict], trial_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (trial, seed) of the trials in `trial_frame`: run_id (the trial's), seed and the
    seed's FINAL columns. A trial of several seeds gives its finished seed runs (tags
    splitbench.role = seed, seed = k); a trial of one seed gives its own final metrics."""
    single = {r: s for r, s, n in zip(trial_frame["run_id"], trial_frame["seed"], trial_frame["seeds"]) if n == 1}
    several = set(trial_frame["run_id"]) - set(single)
    rows = []
    for run in runs:
        tags = run["tags"]
        if run["run_id"] in single and not pd.isna(single[run["run_id"]]):  # a run without a seed param has none
            trial, seed = run["run_id"], single[run["run_id"]]
        elif (_is_seed_run(run) and tags.get(names.PARENT) in several
              and str(tags.get(names.SEED, "")).isdigit()):
            trial, seed = tags[names.PARENT], int(tags[names.SEED])
        else:
            continue
        rows.append({"run_id": trial, "seed": int(seed)} | {col: run["metrics"].get(name, np.nan)
                                                             for name, col in FINAL.items()})
    return pd.DataFrame(rows, columns=["run_id", "seed", *FINAL.values()])


def settings(trial_frame: pd.DataFrame, seed_frame: pd.DataFrame, margin_pp: float = noise.MARGIN_PP) -> pd.DataFrame:
    """One row per (cell, setting): its seeds, means, and the paired comparison with the cell's baseline.

    A setting's seeds are those of its trials (a later trial that repeats a seed already counted for
    the setting is left out), each with its own final metrics (`seed_frame`, from seed_values).
    Columns: SETTING, baseline, seeds (how many), seed_list, run_ids (the trials counted), the mean
    of each FINAL column over the seeds and its sample std (`<column>_std`, NaN for one seed),
    acc_ci_low / acc_ci_high (the 95% t interval of the mean accuracy, within [0, 1]; NaN for one
    seed), comm_x / total_x / flops_x (baseline cost / cost; NaN where the cell has no baseline),
    delta_pp (mean accuracy minus the baseline's, pp), within (delta_pp >= -margin_pp: PAPER.md's
    rule, on means), looks (1, or the looks of adaptive seeds), then the paired comparison over the
    seeds both have (reports.noise.paired): paired_seeds, paired_delta_pp, paired_sd_pp,
    paired_ci_low, paired_ci_high (the one-sided bounds), rho (correlation of the arms' per-seed
    accuracies), verdict (noise's words; "reference" for the baseline, "" with no baseline), and
    margin_pp.
    """
    per_seed = {run_id: group.set_index("seed") for run_id, group in seed_frame.groupby("run_id")}
    rows, accs = [], []
    for key, group in trial_frame.groupby(SETTING + ["baseline"], sort=False, dropna=False):
        taken, counted = set(), []
        for index, seed_list in group["seed_list"].items():
            seeds = set(seed_list.split(",")) - {""}
            if not seeds & taken:
                taken |= seeds
                counted.append(index)
        kept = group.loc[counted]
        values = pd.concat([per_seed[r] for r in kept["run_id"] if r in per_seed] or [seed_frame.set_index("seed")[:0]])
        values = values[~values.index.duplicated()].sort_index()
        row = dict(zip(SETTING + ["baseline"], key))
        row |= {"seeds": len(values), "seed_list": ",".join(map(str, values.index)), "run_ids": kept["run_id"].tolist(),
                "looks": int(kept["looks"].max())}
        for col in FINAL.values():
            row[col] = values[col].mean() if len(values) else np.nan
            row[f"{col}_std"] = values[col].std(ddof=1) if len(values) > 1 else np.nan
        row["acc_ci_low"], row["acc_ci_high"] = (np.clip(v, 0, 1) for v in noise.mean_interval(values["acc"]))
        rows.append(row)
        accs.append(values["acc"].to_dict())
    columns = [*SETTING, "baseline", "seeds", "seed_list", "run_ids", "looks",
               *(c for col in FINAL.values() for c in (col, f"{col}_std")), "acc_ci_low", "acc_ci_high"]
    out = pd.DataFrame(rows, columns=columns)
    base = out[out["baseline"]].set_index("study")
    for cost, factor in (("comm_bytes", "comm_x"), ("total_bytes", "total_x"), ("client_flops", "flops_x")):
        ref = out["study"].map(base[cost])
        with np.errstate(divide="ignore", invalid="ignore"):
            out[factor] = ref / out[cost]
    out["delta_pp"] = (out["acc"] - out["study"].map(base["acc"])) * 100
    # 1e-9: accuracies are fractions of a test set; exactly -margin must count as within.
    out["within"] = out["delta_pp"] >= -margin_pp - 1e-9
    paired = ["paired_seeds", "paired_delta_pp", "paired_sd_pp", "paired_ci_low", "paired_ci_high", "rho", "verdict"]
    out[paired] = pd.DataFrame(_paired(out, accs, margin_pp), columns=paired, index=out.index)
    out["margin_pp"] = margin_pp
    return out


def _paired(out: pd.DataFrame, accs: list[dict], margin_pp: float) -> list[tuple]:
    """Per row of `out` (settings; `accs`: each one's accuracy by seed), its paired comparison with its
    cell's baseline (reports.noise.paired): seeds, delta, sd, low, high, rho, verdict."""
    base_accs = {out.at[i, "study"]: accs[i] for i in out.index[out["baseline"]]}
    compared = []
    for i in out.index:
        if out.at[i, "study"] not in base_accs:
            compared.append((0, np.nan, np.nan, np.nan, np.nan, np.nan, ""))
        elif out.at[i, "baseline"]:
            compared.append((out.at[i, "seeds"], 0.0, 0.0, 0.0, 0.0, np.nan, noise.REFERENCE))
        else:
            p = noise.paired(accs[i], base_accs[out.at[i, "study"]], margin_pp, int(out.at[i, "looks"]))
            compared.append((p.n, p.delta, p.sd, p.low, p.high, p.rho, p.verdict))
    return compared


def cells(trial_frame: pd.DataFrame) -> pd.DataFrame:
    """One row per study, in the order first seen: CELL fields, title, runs (trials), seeds (every seed
    any trial used, "0, 1, 2"), PROVENANCE, label.

    Provenance columns join the distinct values of the cell's runs with "; " (one value when the
    sweep ran from one commit on one device, as it should).
    """
    rows = []
    for study, group in trial_frame.groupby("study", sort=False):
        first = group.iloc[0]
        row = {"study": study, **{k: first[k] for k in CELL}}
        row["title"] = title(first)
        row["runs"] = len(group)
        used = {int(s) for seeds in group["seed_list"] for s in seeds.split(",") if s}
        row["seeds"] = ", ".join(map(str, sorted(used)))
        row |= {k: "; ".join(dict.fromkeys(group[k].astype(str))) for k in PROVENANCE}
        rows.append(row)
    out = pd.DataFrame(rows, columns=["study", *CELL, "title", "runs", "seeds", *PROVENANCE])
    # label: what tells this cell from the others (the whole title when there is one cell)
    shared = shared_title(out["title"]).split(" · ")
    out["label"] = [" · ".join(p for p in t.split(" · ") if p not in shared) or t for t in out["title"]]
    return out


def shared_title(titles: pd.Series) -> str:
    """The parts (" · "-separated) that every cell title shares, e.g. "smallcnn, cut 2 · cifar10"."""
    parts = [t.split(" · ") for t in titles]
    return " · ".join(p for p in parts[0] if all(p in other for other in parts)) if parts else ""


def title(row) -> str:
    """What tells cells apart, e.g. "vgg11, cut 4 · 5 clients, iid · cifar10 · 200 epochs"."""
    model = row["model"] + ("" if row["width"] == 1 else f" width {row['width']:g}") + f", cut {row['cut']:g}"
    clients = "1 client" if row["clients"] == 1 else f"{row['clients']:g} clients, {row['partition']}"
    subset = "" if pd.isna(row["train_subset"]) else f", {row['train_subset']:g} training images"
    return f"{model} · {clients} · {row['dataset']}{subset} · {row['epochs']:g} epochs"
