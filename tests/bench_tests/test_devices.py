"""Which device a run and a sweep worker use."""

import pytest
import torch

from bench.devices import resolve_device, use_worker_device, worker_device
from bench.errors import UsageError


def test_workers_spread_round_robin_over_the_visible_devices():
    assert [worker_device(i, 2) for i in range(5)] == [torch.device("cuda", d) for d in (0, 1, 0, 1, 0)]
    assert {worker_device(i, 1) for i in range(3)} == {torch.device("cuda", 0)}  # one GPU, shared
    assert worker_device(3, 0) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_workers_and_runs_stay_on_the_cpu():
    assert use_worker_device(1) is None
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UsageError, match=r"^device: cuda is not available"):
        resolve_device("cuda")
