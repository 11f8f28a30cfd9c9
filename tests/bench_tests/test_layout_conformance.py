"""Every registered layout, built-in or plugin, passes every check of the conformance kit
(bench/layouts/testing.py); the kit itself catches broken layouts."""

import pytest

from bench.layouts import LAYOUTS
from bench.layouts.per_batch import BatchCache, BatchClient, BatchRecord
from bench.layouts.testing import CHECKS, check_modes, check_replay_order, check_transports
from bench.registry import Entry

SLOW = {check_transports}  # a server process per transport


@pytest.mark.parametrize("check", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in CHECKS],
                         ids=lambda check: check.__name__)
@pytest.mark.parametrize("name", LAYOUTS.names())
def test_layout_conforms(name, check):
    check(name)


class SentOrder(BatchRecord):
    """Replays each view in the order it was sent, drawing nothing."""

    def order(self, generator):
        self.replays += 1
        return list(self.views[self.replays % len(self.views)])


class SentOrderClient(BatchClient):
    def __init__(self, cfg, samples):
        super().__init__(cfg, samples)
        self.record = SentOrder()


class FirstBatchCache(BatchCache):
    """Answers every CACHED frame with its first batch."""

    def cached(self, frame):
        return self.replay(self.batches()[0])


class OrderNotDrawn:
    server, client, chosen_by = BatchCache, SentOrderClient, ()


class OneBatchReplayed:
    server, client, chosen_by = FirstBatchCache, BatchClient, ()


@pytest.mark.parametrize("broken, check, message", [
    (OrderNotDrawn, check_replay_order, "two CACHED epochs replayed in the same order"),
    (OneBatchReplayed, check_modes, "a CACHED epoch did not train on every training sample"),
], ids=["order-not-drawn", "one-batch-replayed"])
def test_kit_catches_a_broken_layout(monkeypatch, broken, check, message):
    monkeypatch.setitem(LAYOUTS._entries, "per-batch", Entry("per-batch", broken, "test"))
    with pytest.raises(AssertionError, match=f"layout 'per-batch': {message}"):
        check("per-batch")
