"""TFLite models built with the flatbuffers package's builder (independent of our reader)."""

from __future__ import annotations

import pytest
from kt_builders import attr_s, flex_options, node, tflite_model

from modelsec.bytesource import BytesSource
from modelsec.engine import Engine, FileResult
from modelsec.tensorflow.flatbuffer import FlatBufferError, flex_root_strings

ADD, CONV_2D, CUSTOM, STABLEHLO_CASE = 0, 3, 32, 209


def scan(data: bytes) -> FileResult:
    return Engine().scan_source("model.tflite", BytesSource(data))


def threats(result: FileResult) -> list[str]:
    return sorted(f.threat for f in result.findings)


def test_builtin_ops_only_is_clean() -> None:
    result = scan(
        tflite_model(
            [(ADD, None), (CONV_2D, None), (STABLEHLO_CASE, None)], [(0, None), (1, None), (2, None)]
        )
    )
    assert result.format == "tflite" and result.findings == [] and result.incompletes == []


def test_custom_ops_and_unknown_builtin_codes() -> None:
    result = scan(
        tflite_model(
            [(CUSTOM, "MyNativeOp"), (CUSTOM, "TFLite_Detection_PostProcess"), (5000, None)],
            [(0, None), (1, None)],
        )
    )
    assert threats(result) == ["MS-TF-030", "MS-TF-031"]
    custom = next(f for f in result.findings if f.threat == "MS-TF-030")
    assert custom.subject == "MyNativeOp" and custom.rule == "KnownFrameworkOperators"


def test_flex_ops_judged_by_their_node_defs() -> None:
    pyfunc = node("f", "PyFunc", attrs=attr_s("token", "pyfunc_9"))
    result = scan(
        tflite_model(
            [(CUSTOM, "FlexPyFunc"), (CUSTOM, "FlexAddV2")],
            [(0, flex_options("PyFunc", pyfunc)), (1, flex_options("AddV2", node("a", "AddV2")))],
        )
    )
    assert threats(result) == ["MS-TF-001"] and "pyfunc_9" in result.findings[0].message
    # The delegate runs the NodeDef, not the name: a benign name hiding a file write.
    result = scan(tflite_model([(CUSTOM, "FlexAddV2")], [(0, flex_options("AddV2", node("w", "WriteFile")))]))
    assert threats(result) == ["MS-TF-003", "MS-TF-033"]
    # A Flex op TensorFlow does not define.
    result = scan(
        tflite_model([(CUSTOM, "FlexNotAnOp")], [(0, flex_options("NotAnOp", node("n", "NotAnOp")))])
    )
    assert threats(result) == ["MS-TF-010"]


def test_flex_op_without_readable_options_is_judged_by_name() -> None:
    result = scan(tflite_model([(CUSTOM, "FlexReadFile")], [(0, b"\x01\x02")]))
    assert threats(result) == ["MS-TF-002", "MS-TF-032"]


def test_malformed_indices_and_buffers() -> None:
    result = scan(tflite_model([(ADD, None)], [(7, None)], buffers=[(0, 0), (1 << 40, 16)]))
    assert threats(result) == ["MS-TF-032", "MS-TF-032"]


def test_broken_offsets_fail_closed() -> None:
    data = bytearray(tflite_model([(ADD, None)], [(0, None)]))
    data[0:4] = (len(data) - 2).to_bytes(4, "little")  # root table points at the last bytes
    result = scan(bytes(data))
    assert result.format == "tflite" and result.incompletes and threats(result) == ["MS-TF-032"]


def test_flexbuffer_reader_rejects_garbage() -> None:
    assert flex_root_strings(flex_options("Op", b"\x0a\x01x")) == [b"Op", b"\x0a\x01x"]
    for bad in (b"", b"\x00\x00\x09", b"\x05\x28\x01", b"\xff" * 8):
        with pytest.raises(FlatBufferError):
            flex_root_strings(bad)
