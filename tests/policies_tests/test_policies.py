"""Exact mode sequences of the built-in policies, on scripted losses."""

import pytest

from bench.errors import UsageError
from policies import POLICIES, Mode
from policies.testing import run_policy

F, B, C = Mode.FULL, Mode.FORWARD, Mode.CACHED


def make(name, **fields):
    return POLICIES.get(name)(**fields)


def test_always_is_full_every_epoch():
    assert run_policy(make("always"), [2.0, 1.0, 0.5, 0.4]) == [F] * 4


@pytest.mark.parametrize(
    "period, expected",
    [
        (1, [F, F, F, F, F, F, F]),
        (2, [F, B, F, B, F, B, F]),
        (3, [F, B, C, F, B, C, F]),
        (5, [F, B, C, C, C, F, B]),
    ],
)
def test_periodic(period, expected):
    assert run_policy(make("periodic", period=period), [1.0] * 7) == expected


# Loss after each epoch. With threshold 0.1 and reference = last FULL epoch's loss:
# e0 F (no ref) -> L=2.0, ref 2.0 -> |0| < .1  -> e1 B
# e1 B -> L=1.95 |2.0-1.95|=.05 -> e2 C ;  e2 C -> L=1.92 (.08) -> e3 C
# e3 C -> L=1.85 (.15 >= .1) -> e4 F ; e4 F -> L=1.80, ref 1.80 -> e5 B
# e5 B -> L=1.60 (.20) -> e6 F ; e6 F -> L=1.55 -> e7 B
LOSSES = [2.0, 1.95, 1.92, 1.85, 1.80, 1.60, 1.55, 1.50]


def test_loss_threshold_last_full_follows_the_paper_rule():
    modes = run_policy(make("loss_threshold", threshold=0.1, reference="last_full"), LOSSES)
    assert modes == [F, B, C, C, F, B, F, B]


def test_loss_threshold_previous_compares_consecutive_epochs():
    # e0 F; e1: no previous pair yet -> F; then |L(e-2) - L(e-1)|:
    # e2: |2.0-1.95|=.05 -> B (after F); e3: |1.95-1.92|=.03 -> C; e4: |1.92-1.85|=.07 -> C;
    # e5: |1.85-1.80|=.05 -> C; e6: |1.80-1.60|=.20 -> F; e7: |1.60-1.55|=.05 -> B
    modes = run_policy(make("loss_threshold", threshold=0.1, reference="previous"), LOSSES)
    assert modes == [F, F, B, C, C, C, F, B]


def test_threshold_zero_is_vanilla_split_learning():
    assert run_policy(make("loss_threshold", threshold=0.0), LOSSES) == [F] * len(LOSSES)


def test_threshold_exactly_reached_goes_back_to_full():
    # |ref - L| >= threshold (not >) returns to FULL: 1.0 -> 0.75 is exactly 0.25.
    assert run_policy(make("loss_threshold", threshold=0.25), [1.0, 1.0, 0.75, 0.75]) == [F, B, C, F]


@pytest.mark.parametrize(
    "name, fields, field",
    [
        ("periodic", {"period": 0}, "policy.period"),
        ("loss_threshold", {"threshold": -1.0}, "policy.threshold"),
        ("loss_threshold", {"reference": "best"}, "policy.reference"),
    ],
)
def test_bad_parameters_name_the_field(name, fields, field):
    with pytest.raises(UsageError, match=f"^{field}: "):
        make(name, **fields)
