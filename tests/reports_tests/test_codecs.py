"""Codec families (as each codec class declares its own) and short labels for legends."""

import pytest

from bench.errors import UsageError
from bench.registry import Registry
from quantizers import QUANTIZERS
from reports.codecs import codec_family, family_label, short_label


@pytest.mark.parametrize("name, family", [
    ("fp32", "cast"), ("fp16", "cast"), ("bf16", "cast"), ("fp16_scaled", "cast"),
    ("fp8_e4m3", "fp8"), ("fp8_e5m2", "fp8"),
    ("fp8_e4m3_unscaled", "cast"), ("fp8_e5m2_unscaled", "cast"),  # registered as casts, named fp8
    ("mxfp4_e2m1", "mx"), ("mxint8", "mx"), ("nvfp4", "mx"),
    ("int8", "int"), ("int4", "int"), ("topk", "sparse"),
])
def test_codec_family(name, family):
    assert codec_family(name) == family


@pytest.mark.parametrize("name", QUANTIZERS.names())
def test_every_registered_codec_declares_its_family_and_the_report_reads_it_there(name):
    assert codec_family(name) == QUANTIZERS.get(name).family


class Undeclared:
    """A plugin's codec that declares no family."""


def test_a_codec_the_report_cannot_name_is_an_error_naming_it(monkeypatch):
    with pytest.raises(UsageError, match="codec 'my_plugin': the report knows no codec family for it .*--plugin"):
        codec_family("my_plugin")
    registry = Registry("codec", "splitbench.none")
    registry.register("undeclared", source="a test")(Undeclared)
    monkeypatch.setattr("reports.codecs.registry", lambda kind: registry)
    with pytest.raises(UsageError, match="codec 'undeclared' \\(Undeclared\\) declares no family"):
        codec_family("undeclared")


def test_pairs_are_written_once_when_both_directions_agree():
    assert [short_label(c) for c in ("fp16/fp16", "fp8_e4m3/fp8_e5m2")] == ["fp16", "fp8_e4m3/fp8_e5m2"]
    assert [family_label(c) for c in ("fp8_e4m3/fp8_e5m2", "fp32/fp8_e5m2", "topk/fp16")] == ["fp8", "cast/fp8", "sparse/cast"]
