"""Recognising ONNX by content, and not claiming other protobufs or random bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx_build import CountingSource, attention, cnn, mlp, model, node, scan_bytes, tree_ensemble, varint, vi

import onnx
from modelsec.bytesource import BytesSource
from modelsec.onnx.detect import looks_like_onnx
from onnx import helper as h


def detects(data: bytes) -> bool:
    return looks_like_onnx(data[: 64 * 1024], BytesSource(data))


def ld(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2]) + varint(len(payload)) + payload


@pytest.mark.parametrize("factory", [mlp, cnn, tree_ensemble, attention])
def test_real_models_are_detected(factory) -> None:
    assert detects(factory().SerializeToString())


def test_engine_records_the_format() -> None:
    result = scan_bytes(mlp().SerializeToString(), "no-extension")
    assert result.format == "onnx"


def test_field_order_does_not_matter() -> None:
    m = mlp()
    graph = m.graph.SerializeToString()
    opset = m.opset_import[0].SerializeToString()
    data = ld(8, opset) + ld(7, graph) + ld(2, b"x") + b"\x08\x09"
    assert detects(data)
    assert onnx.ModelProto.FromString(data).ir_version == 9


def test_model_with_only_opset_import_and_functions() -> None:
    fn = h.make_function("f", "F", ["a"], ["b"], [node("Relu", ["a"], ["b"])], [h.make_opsetid("", 17)])
    m = onnx.ModelProto(ir_version=8)
    m.opset_import.append(h.make_opsetid("", 17))
    m.functions.append(fn)
    assert detects(m.SerializeToString())


def test_truncated_model_is_still_onnx_and_reported_malformed() -> None:
    data = mlp().SerializeToString()
    cut = data[: len(data) // 2]
    assert detects(cut)
    result = scan_bytes(cut)
    assert result.format == "onnx"
    assert [f.threat for f in result.findings] == ["MS-ONNX-020"]
    assert [i.code for i in result.incompletes] == ["MS-ONNX-091"]


def saved_model_pb() -> bytes:
    """A TF SavedModel: field 1 schema version, field 2 a MetaGraphDef (itself holding a
    GraphDef with NodeDefs)."""
    node_def = ld(1, b"serving_default") + ld(2, b"Placeholder")
    graph_def = ld(1, node_def) * 3
    meta_graph = ld(1, ld(1, b"serve")) + ld(2, graph_def)
    return b"\x08\x01" + ld(2, meta_graph)


def test_saved_model_is_not_onnx() -> None:
    assert not detects(saved_model_pb())


def test_graphdef_is_not_onnx() -> None:
    node_def = ld(1, b"x") + ld(2, b"Const")
    assert not detects(ld(1, node_def) * 4 + ld(4, b"\x08\x1b"))


def test_tensor_proto_is_not_onnx() -> None:
    t = onnx.numpy_helper.from_array(np.ones((2, 3), np.float32), "input_0")
    assert not detects(t.SerializeToString())


def test_tflite_is_not_onnx() -> None:
    data = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 200
    assert not detects(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x08",
        b'{"architectures": ["Bert"]}',
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.",  # pickle
        b"PK\x03\x04" + b"\0" * 100,
        b"\x08\x00" + ld(7, ld(1, b"")),  # ir_version 0 is not a version
        b"\x08\xc8\x01" + ld(7, ld(1, b"")),  # ir_version 200 is noise
        b"\x08\x07" + ld(2, b"\xff\xfe not utf8") + ld(7, ld(1, b"")),
        b"\x08\x07" + ld(7, b"\x08\x01"),  # graph whose first field is a varint
        b"\x08\x07" + ld(8, b"\x18\x01"),  # opset_import with an unknown field
        b"\x08\x07",  # version only: no structure
    ],
)
def test_non_onnx_bytes(data: bytes) -> None:
    assert not detects(data)


def test_random_bytes_are_not_onnx() -> None:
    rng = np.random.default_rng(42)
    hits = sum(detects(rng.bytes(4096)) for _ in range(2000))
    assert hits == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_detect_never_raises(data: bytes) -> None:
    detects(data)


def test_detection_of_a_big_model_reads_little(tmp_path) -> None:
    """The graph field is skipped, not read, while detecting."""
    m = model(
        [node("Identity", ["w"], ["y"])],
        [],
        [vi("y", [4096, 1024])],
        [onnx.numpy_helper.from_array(np.zeros((4096, 1024), np.float32), "w")],
    )
    src = CountingSource(m.SerializeToString())
    assert looks_like_onnx(src.read_at(0, 64 * 1024), src)
    assert src.requested < 512 * 1024
