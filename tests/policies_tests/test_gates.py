"""loss_threshold's max_cached and signal options, driven through bench.gating (the engine's own
feeding of policies) on scripted training and validation losses."""

import pytest

from bench.errors import UsageError
from bench.gating import Gate, PolicyState
from policies import POLICIES, Mode

F, B, C = Mode.FULL, Mode.FORWARD, Mode.CACHED


def drive(policy, losses, val_losses=None):
    """The modes `policy` picks when epoch e ends with losses[e] (and val_losses[e])."""
    state = PolicyState(policy)
    modes = []
    for epoch, loss in enumerate(losses):
        modes.append(state.decide(epoch))
        state.record(modes[-1], loss, val_losses[epoch] if val_losses else None)
    return modes


def threshold(**fields):
    return POLICIES.get("loss_threshold")(**fields)


def test_max_cached_forces_a_refresh_after_k_cached_epochs():
    flat = [1.0] * 9  # the loss never moves: the paper's rule stays CACHED for ever
    assert drive(threshold(threshold=0.1), flat) == [F, B, C, C, C, C, C, C, C]
    # run of CACHED epochs: e2 (1), e3 (2) -> e4 FULL; e6, e7 -> e8 FULL
    assert drive(threshold(threshold=0.1, max_cached=2), flat) == [F, B, C, C, F, B, C, C, F]
    assert drive(threshold(threshold=0.1, max_cached=1), flat) == [F, B, C, F, B, C, F, B, C]


# The server over-fits its cache: the training loss falls in CACHED epochs while the validation
# loss stays put until e4. Threshold 0.1, reference = the last FULL epoch (e0: train 2.0, val 2.1).
TRAIN = [2.0, 1.98, 1.7, 1.5, 1.3, 1.2]
VAL = [2.1, 2.08, 2.1, 2.12, 2.3, 2.2]


def test_training_loss_signal_returns_to_full_when_the_server_overfits():
    # e3: |2.0 - 1.7| = .3 -> F (ref 1.5); e4 B; e5: |1.5 - 1.3| = .2 -> F
    assert drive(threshold(threshold=0.1), TRAIN, VAL) == [F, B, C, F, B, F]


def test_validation_signal_stays_quiet_until_the_held_out_loss_moves():
    # e1: |2.1 - 2.1| -> B; e2: .02 -> C; e3: 0 -> C; e4: .02 -> C; e5: |2.1 - 2.3| = .2 -> F
    assert drive(threshold(threshold=0.1, signal="val"), TRAIN, VAL) == [F, B, C, C, C, F]


def test_validation_signal_with_the_previous_reference():
    # e1: no pair yet -> F; e2: |2.1-2.08| -> B; e3: |2.08-2.1| -> C; e4: |2.1-2.12| -> C;
    # e5: |2.12 - 2.3| = .18 -> F
    modes = drive(threshold(threshold=0.1, signal="val", reference="previous"), TRAIN, VAL)
    assert modes == [F, F, B, C, C, F]


def test_global_gate_weights_validation_losses_by_samples():
    gate = Gate(lambda: threshold(threshold=0.1, signal="val"), clients=2, per_client=False)
    assert gate.decide(0) == [F, F]
    # val: client 0 (sum 30 over 10 samples), client 1 (sum 10 over 30): mean 40/40 = 1.0
    gate.record([F, F], [(20.0, 10), (20.0, 10)], [(30.0, 10), (10.0, 30)])
    assert gate.states[0].ref_val_loss == 1.0
    gate.record(gate.decide(1), [(1.0, 10), (1.0, 10)], [(12.0, 10), (28.0, 30)])  # 40/40: unchanged
    assert gate.decide(2) == [C, C]


def test_per_client_gate_feeds_each_client_its_own_validation_loss():
    gate = Gate(lambda: threshold(threshold=0.1, signal="val"), clients=2, per_client=True)
    gate.record(gate.decide(0), [(2.0, 1), (2.0, 1)], [(1.0, 1), (1.0, 1)])
    gate.record(gate.decide(1), [(2.0, 1), (2.0, 1)], [(1.0, 1), (1.5, 1)])  # client 1 moved .5
    assert gate.decide(2) == [C, F]


@pytest.mark.parametrize(
    "fields, field", [({"max_cached": -1}, "policy.max_cached"), ({"max_cached": 1.5}, "policy.max_cached"),
                      ({"signal": "test"}, "policy.signal")],
)
def test_bad_options_name_the_field(fields, field):
    with pytest.raises(UsageError, match=field):
        threshold(**fields)
