"""Codec families and short labels for legends."""

import pytest

from reports.codecs import codec_family, family_label, short_label


@pytest.mark.parametrize("name, family", [
    ("fp32", "cast"), ("fp16", "cast"), ("bf16", "cast"), ("fp16_scaled", "cast"),
    ("fp8_e4m3", "fp8"), ("fp8_e5m2_unscaled", "fp8"),
    ("mxfp4_e2m1", "mx"), ("mxint8", "mx"), ("nvfp4", "mx"),
    ("int8", "int"), ("int4", "int"), ("topk", "sparse"), ("my_plugin", "my_plugin"),
])
def test_codec_family(name, family):
    assert codec_family(name) == family


def test_pairs_are_written_once_when_both_directions_agree():
    assert [short_label(c) for c in ("fp16/fp16", "fp8_e4m3/fp8_e5m2")] == ["fp16", "fp8_e4m3/fp8_e5m2"]
    assert [family_label(c) for c in ("fp8_e4m3/fp8_e5m2", "fp32/fp8_e5m2", "topk/fp16")] == ["fp8", "cast/fp8", "sparse/cast"]
