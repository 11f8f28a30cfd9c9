import pytest

from quantizers import compiled


@pytest.fixture(params=[True, False], ids=["compiled", "torch"])
def codec_path(request, monkeypatch):
    """Each codec path on the CPU: the compiled loops, and the torch one other devices take."""
    monkeypatch.setattr(compiled, "ENABLED", request.param)
    return request.param
