"""The name of every metric a run logs and of every tag that ties runs together, spelled here once.

The engine writes them, bench/record.py and bench/tracking/ store them, the report reads them,
and docs/metrics.md says what each one means. Plain strings and nothing else: any module may
import this one.
"""

from __future__ import annotations

# ---- per epoch (MLflow step = epoch) ------------------------------------------------------------
TRAIN_LOSS, VAL_LOSS = "train/loss", "val/loss"  # the validation loss with a validation slice
TEST_ACC = "test/acc"  # on the epochs that were tested
MODE = "mode"  # 0 FULL, 1 FORWARD, 2 CACHED
LR = "lr"
CLIENT_FLOPS = "client/flops"
TIME = "time/"  # the prefix of the measured and modelled times
EPOCH_S, COMM_S, TOTAL_S = "time/epoch_s", "time/comm_s", "time/total_s"  # the last two with a link model
# The byte kinds of comm/<kind>_bytes, per epoch, in the order a run logs them.
COMM_KINDS = ("up", "down", "sync", "label", "meta", "val")
WIRE_KINDS = ("wire_up", "wire_down")


def comm(kind: str) -> str:
    """The per-epoch bytes of one kind: comm/up_bytes, comm/wire_down_bytes, ..."""
    return f"comm/{kind}_bytes"


def per_client(name: str, k: int) -> str:
    """A per-epoch metric of client k alone (runs of several clients): mode/client_0, ..."""
    return f"{name}/client_{k}"


def is_mode(name: str) -> bool:
    """Whether a per-epoch metric is a mode (`mode`, `mode/client_<k>`): a mean of modes is no mode."""
    return name == MODE or name.startswith(f"{MODE}/")


# ---- final (step 0) -----------------------------------------------------------------------------
FINAL = "final/"
FINAL_TEST_ACC = "final/test_acc"
# Bytes: activations + gradients (+ the validation slice's activations), everything, then each kind.
FINAL_COMM_BYTES, FINAL_TOTAL_BYTES = "final/comm_bytes", "final/total_bytes"
FINAL_UP_BYTES, FINAL_DOWN_BYTES = "final/up_bytes", "final/down_bytes"
FINAL_LABEL_BYTES, FINAL_SYNC_BYTES = "final/label_bytes", "final/sync_bytes"
FINAL_META_BYTES, FINAL_VAL_BYTES = "final/meta_bytes", "final/val_bytes"
FINAL_WIRE_UP_BYTES, FINAL_WIRE_DOWN_BYTES = "final/wire_up_bytes", "final/wire_down_bytes"
FINAL_CLIENT_FLOPS = "final/client_flops"
FINAL_FULL_EPOCHS, FINAL_FORWARD_EPOCHS, FINAL_CACHED_EPOCHS = (
    "final/full_epochs", "final/forward_epochs", "final/cached_epochs")
FINAL_TRAIN_S = "final/train_s"
FINAL_COMM_S, FINAL_TOTAL_S = "final/comm_s", "final/total_s"  # with a link model
STD = "_std"  # final/<name>_std: the sample standard deviation over a setting's seeds


def std(name: str) -> str:
    """The standard deviation over the seeds of final metric `name`: final/test_acc_std, ..."""
    return f"{name}{STD}"


def is_final(name: str) -> bool:
    return name.startswith(FINAL)


# ---- logged by others -----------------------------------------------------------------------------
SYSTEM = "system/"  # MLflow's system metrics of the machine, system/<name>
PRIVACY = "privacy/"  # an attack's scores on the run it attacked
PRIVACY_CONTROL = "privacy/shuffled_"  # the shuffled-pairs control's scores

# ---- params a run logs beside RunConfig.to_params() ----------------------------------------------
SEEDS = "seeds"  # the seeds a setting trained, in order: "0,1,2"
SEEDS_MIN, SEEDS_MAX = "seeds_min", "seeds_max"  # the plan of a sweep's adaptive seeds
SEED_PARAMS = (SEEDS, SEEDS_MIN, SEEDS_MAX)

# ---- tags -------------------------------------------------------------------------------------------
ROLE = "splitbench.role"  # what a run is among a sweep's or a setting's runs: one of the roles below
STUDY_ROLE, TRIAL_ROLE, SEED_ROLE = "study", "trial", "seed"


def role_is(role: str) -> str:
    """An MLflow search filter: the runs of one role."""
    return f"tags.`{ROLE}` = '{role}'"


PARENT = "mlflow.parentRunId"  # MLflow's own: the run a nested run sits under
SWEEP = "sweep"
STUDY = "study"
TRIAL = "trial"
SEED = "seed"
CONFIG_KEY = "config_key"
DUPLICATE_OF = "duplicate_of"
ABLATION = "ablation"  # an ablation step's run: what the step took away (bench/ablation.py)
ABLATION_OF = "ablation_of"  # and the trial number of the setting it ablates
SUPERSEDED_BY = "superseded_by"
FAILURE_REASON = "failure_reason"
# How a run was made (every run): the source's commit, the versions, the device, where the images came from.
GIT_COMMIT = "git_commit"
VERSIONS = "versions"
DEVICE = "device"
DATA_SOURCE = "data_source"
PROVENANCE = (GIT_COMMIT, VERSIONS, DEVICE, DATA_SOURCE)
MARGIN_PP = "margin_pp"
