"""The ModelProto reader: what it extracts, protobuf semantics, and its bounds."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from onnx_build import CountingSource, attention, codes, mlp, model, node, scan_bytes, varint, vi

import onnx
from modelsec.bytesource import BytesSource
from modelsec.onnx.reader import ReaderLimits, read_model
from onnx import TensorProto as TP
from onnx import helper as h


def read(m: onnx.ModelProto | bytes, **limits):
    data = m if isinstance(m, bytes) else m.SerializeToString()
    return read_model(BytesSource(data), ReaderLimits(**limits) if limits else None)


def test_reads_structure_like_onnx_does() -> None:
    m = attention("where")
    r = read(m)
    assert r.errors == [] and not r.malformed
    assert r.ir_version == m.ir_version and r.producer_name == "modelsec-tests"
    assert [(o.domain, o.version) for o in r.opset_imports] == [(o.domain, o.version) for o in m.opset_import]
    assert [n.op_type for n in r.graph.nodes] == [n.op_type for n in m.graph.node]
    assert [n.name for n in r.graph.nodes] == [n.name for n in m.graph.node]
    assert [n.inputs for n in r.graph.nodes] == [list(n.input) for n in m.graph.node]
    assert [t.name for t in r.graph.initializers] == [t.name for t in m.graph.initializer]
    assert r.graph.inputs == ["h", "mask"] and r.graph.outputs == ["out"]
    ln = r.graph.nodes[-1]
    assert ln.attribute("axis").i == -1


@pytest.mark.parametrize(
    "dtype, values",
    [
        (np.float32, [1.5, -2.0]),
        (np.float64, [1e300]),
        (np.int64, [-(2**40), 7]),
        (np.int32, [-5]),
        (np.int8, [-3, 4]),
        (np.uint8, [200]),
        (np.bool_, [True, False]),
        (np.float16, [0.5, -65504.0]),
        (np.uint64, [2**63]),
    ],
)
def test_small_constant_values_are_decoded(dtype, values) -> None:
    for raw in (True, False):
        t = onnx.numpy_helper.from_array(np.asarray(values, dtype=dtype), "c")
        if not raw:
            t = h.make_tensor(
                "c",
                t.data_type,
                t.dims,
                np.asarray(values, dtype=dtype).tolist()
                if dtype != np.float16
                else np.asarray(values, dtype=dtype),
                raw=False,
            )
        m = model([node("Identity", ["c"], ["y"])], [], [vi("y")], [t])
        got = read(m).graph.initializers[0].values
        assert got == tuple(float(v) for v in np.asarray(values, dtype=dtype)), (dtype, raw)


def test_bfloat16_values() -> None:
    t = h.make_tensor("c", TP.BFLOAT16, [2], [1.0, -3.0])
    m = model([node("Identity", ["c"], ["y"])], [], [vi("y")], [t])
    assert read(m).graph.initializers[0].values == (1.0, -3.0)


def test_large_tensors_are_located_not_read() -> None:
    big = onnx.numpy_helper.from_array(np.zeros((8 << 20) // 4, np.float32), "big")
    m = model([node("Identity", ["big"], ["y"])], [], [vi("y")], [big])
    data = m.SerializeToString()
    src = CountingSource(data)
    r = read_model(src)
    assert r.graph.initializers[0].values is None
    assert r.graph.initializers[0].dims == [(8 << 20) // 4]
    assert src.requested < len(data) // 8


def test_inconsistent_element_count_gives_no_values() -> None:
    t = onnx.numpy_helper.from_array(np.ones(3, np.float32), "c")
    t.dims[:] = [4]
    m = model([node("Identity", ["c"], ["y"])], [], [vi("y")], [t])
    assert read(m).graph.initializers[0].values is None


def test_wrong_wire_type_is_an_unknown_field() -> None:
    """An op_type sent as a varint is ignored by protobuf: the node has no op_type."""
    m = model([node("Relu", ["x"], ["y"])], [vi("x")], [vi("y")])
    n = m.graph.node[0]
    fake = b"\x20\x05"  # field 4 (op_type) as varint
    raw_node = n.SerializeToString() + fake
    parsed = onnx.NodeProto.FromString(raw_node)
    assert parsed.op_type == "Relu"
    g = onnx.GraphProto.FromString(b"\x0a" + varint(len(raw_node)) + raw_node)
    assert g.node[0].op_type == "Relu"


def test_last_scalar_wins() -> None:
    m = mlp()
    data = m.SerializeToString() + b"\x08\x03"  # a second ir_version
    assert onnx.ModelProto.FromString(data).ir_version == 3
    assert read(data).ir_version == 3


def test_names_that_are_not_utf8_survive_and_stay_distinct() -> None:
    a = b"v\xff"
    b = b"v\xfe"
    n = onnx.NodeProto()
    n.op_type = "Add"
    n.input.extend(["x", "x"])
    raw = n.SerializeToString() + b"\x12\x02" + a + b"\x12\x02" + b  # two outputs
    g = b"\x0a" + varint(len(raw)) + raw
    data = b"\x08\x09" + b"\x3a" + varint(len(g)) + g + b"\x42\x04\x0a\x00\x10\x11"
    r = read(data)
    outs = r.graph.nodes[0].outputs
    assert len(set(outs)) == 2 and all(o.startswith("v") for o in outs)


def test_over_long_names_are_abbreviated_but_distinct() -> None:
    m = model(
        [
            node("Identity", ["x"], ["a" * 10_000 + "1"], name="n1"),
            node("Identity", ["x"], ["a" * 10_000 + "2"], name="n2"),
        ],
        [vi("x")],
        [vi("a" * 10_000 + "1")],
    )
    r = read(m)
    o1, o2 = (n.outputs[0] for n in r.graph.nodes)
    assert o1 != o2 and len(o1) < 5000 and "sha256" in o1
    assert r.graph.outputs[0] == o1


def test_node_limit_keeps_what_was_read() -> None:
    nodes = [node("Relu", [f"v{i}"], [f"v{i + 1}"]) for i in range(100)]
    r = read(model(nodes, [vi("v0")], [vi("v100")]), max_nodes=10)
    assert len(r.graph.nodes) == 10
    assert r.errors and "more than 10 nodes" in r.errors[0] and not r.malformed


def test_limits_turn_into_incompletes_and_findings_before_are_kept(monkeypatch) -> None:
    from modelsec.formats.onnx import SCANNER

    nodes = [h.make_node("Evil", ["x"], ["e"], name="evil", domain="bad")]
    nodes += [node("Relu", [f"v{i}"], [f"v{i + 1}"]) for i in range(600)]
    m = model(nodes, [vi("x"), vi("v0")], [vi("v600")], opsets={"bad": 1})
    monkeypatch.setattr(SCANNER, "reader_limits", ReaderLimits(max_nodes=100))
    result = scan_bytes(m.SerializeToString())
    # the opset imports (written after the graph) are still known: no false "unknown op"
    assert codes(result) == ["MS-ONNX-002"]
    assert [i.code for i in result.incompletes] == ["MS-ONNX-090"]
    assert "more than 100 nodes" in result.incompletes[0].reason


def test_hostile_length_claim_does_not_allocate() -> None:
    """A graph field claiming 10 GB: rejected from the length alone."""
    data = b"\x08\x09" + b"\x3a" + varint(10 << 30) + b"\x0a\x00" * 8
    tracemalloc.start()
    try:
        r = read(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.malformed and r.graph is None
    assert peak < 4 << 20


def test_deep_message_nesting_is_bounded() -> None:
    """Graphs nested through If attributes 1000 levels deep, built from bytes."""
    g = b""
    for _ in range(1000):
        attr = b"\x0a\x01g" + b"\x32" + varint(len(g)) + g + b"\xa0\x01\x05"
        nd = b"\x22\x02If" + b"\x2a" + varint(len(attr)) + attr
        g = b"\x0a" + varint(len(nd)) + nd
    data = b"\x08\x09" + b"\x3a" + varint(len(g)) + g + b"\x42\x02\x10\x11"
    r = read(data)
    assert r.errors and "nested deeper" in r.errors[0]
    result = scan_bytes(data)
    assert result.format == "onnx"
    assert any(i.code == "MS-ONNX-090" for i in result.incompletes)
    assert not any(i.code == "MS-GEN-002" for i in result.incompletes)


def test_all_graphs_walks_every_subgraph() -> None:
    inner = h.make_graph([node("Relu", ["x"], ["t"])], "inner", [], [vi("t")])
    mid = h.make_graph(
        [h.make_node("If", ["c"], ["m"], then_branch=inner, else_branch=inner)], "mid", [], [vi("m")]
    )
    m = model(
        [h.make_node("If", ["c"], ["y"], name="top", then_branch=mid, else_branch=mid)], [vi("c")], [vi("y")]
    )
    r = read(m)
    graphs = r.all_graphs()
    assert len(graphs) == 7
    assert any("node 'top' (If).then_branch > node" in g.where for g in graphs)
