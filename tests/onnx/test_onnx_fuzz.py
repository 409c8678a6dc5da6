"""Hostile and random bytes: the ONNX scanner reports, it never raises or runs away.

The scanner is called directly (not through the engine, whose catch-all would hide an
escaping exception as an ERROR), so any exception fails the test.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx_build import T, attention, mlp, model, node, vi

import onnx
from modelsec.bytesource import BytesSource
from modelsec.context import Limits, ScanContext, ScanSink
from modelsec.engine import dispatch
from modelsec.formats.onnx import SCANNER
from modelsec.interpretations import REGISTERED
from modelsec.onnx.reader import read_model
from onnx import helper as h

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_scanner(data: bytes) -> ScanSink:
    sink = ScanSink(Limits())
    ctx = ScanContext("fuzz.onnx", sink, dispatch, formats=REGISTERED)
    SCANNER.scan(BytesSource(data), ctx)  # must not raise
    return sink


def _with_control_flow_and_functions() -> onnx.ModelProto:
    then_g = h.make_graph(
        [node("Constant", [], ["t"], value=T("tv", [1.0, 2.0, 3.0]))], "then", [], [vi("t", [3])]
    )
    else_g = h.make_graph([node("Relu", ["x"], ["e"])], "else", [], [vi("e", [3])])
    fn = h.make_function("f", "F", ["a"], ["b"], [node("Neg", ["a"], ["b"])], [h.make_opsetid("", 17)])
    m = model(
        [
            node("ReduceSum", ["x"], ["s"], keepdims=0),
            node("Equal", ["s", "k"], ["c"]),
            node("If", ["c"], ["y0"], then_branch=then_g, else_branch=else_g),
            h.make_node("F", ["y0"], ["y"], name="call", domain="f"),
        ],
        [vi("x", [3])],
        [vi("y", [3])],
        [T("k", 5.0)],
        opsets={"f": 1},
        functions=[fn],
    )
    t = m.graph.initializer[0]
    e = t.external_data.add()
    e.key, e.value = "location", "w.bin"
    return m


BASES = [m.SerializeToString() for m in (mlp(), attention("where"), _with_control_flow_and_functions())]


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    run_scanner(data)


@FUZZ
@given(
    st.sampled_from(range(len(BASES))),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_byte_mutations_of_valid_models(base: int, edits) -> None:
    data = bytearray(BASES[base])
    for pos, value in edits:
        data[pos % len(data)] = value
    run_scanner(bytes(data))


@FUZZ
@given(
    st.sampled_from(range(len(BASES))),
    st.integers(0, 1 << 20),
    st.binary(min_size=1, max_size=64),
    st.booleans(),
)
def test_insertions_and_truncations(base: int, pos: int, chunk: bytes, truncate: bool) -> None:
    data = BASES[base]
    pos %= len(data)
    data = data[:pos] if truncate else data[:pos] + chunk + data[pos:]
    run_scanner(data)


@FUZZ
@given(st.sampled_from(range(len(BASES))), st.integers(0, 1 << 20), st.integers(1, 10 << 30))
def test_length_prefixes_claiming_huge_sizes(base: int, pos: int, claim: int) -> None:
    """A length varint rewritten to claim up to 10 GB somewhere in the model."""
    data = BASES[base]
    pos %= len(data)
    out = bytearray()
    n = claim
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    run_scanner(data[:pos] + bytes(out) + data[pos + 1 :])


# -- structured: random but valid graphs ---------------------------------------------------

UNARY = ["Relu", "Neg", "Abs", "Sigmoid", "Identity", "Not", "Cast", "Softmax", "ReduceSum", "Shape"]
BINARY = ["Add", "Sub", "Mul", "MatMul", "Equal", "Greater", "Less", "And"]


@st.composite
def random_models(draw) -> onnx.ModelProto:
    values = ["x", "k0", "k1"]
    nodes = []
    for i in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["unary", "binary", "where", "custom"]))
        out = f"v{i}"
        pick = lambda: draw(st.sampled_from(values))  # noqa: E731
        if kind == "unary":
            op = draw(st.sampled_from(UNARY))
            attrs = {"to": onnx.TensorProto.FLOAT} if op == "Cast" else {}
            nodes.append(node(op, [pick()], [out], **attrs))
        elif kind == "binary":
            nodes.append(node(draw(st.sampled_from(BINARY)), [pick(), pick()], [out]))
        elif kind == "where":
            nodes.append(node("Where", [pick(), pick(), pick()], [out]))
        else:
            nodes.append(h.make_node("Op", [pick()], [out], name=out, domain="c"))
        values.append(out)
    if draw(st.booleans()):
        draw(st.randoms()).shuffle(nodes)
    return model(
        nodes,
        [vi("x", [2])],
        [vi(values[-1], [2])],
        [T("k0", draw(st.floats(-1e6, 1e6, allow_nan=False))), T("k1", [1.0, 2.0])],
        opsets={"c": 1},
    )


@FUZZ
@given(random_models())
def test_random_graphs_are_read_like_protobuf_reads_them(m: onnx.ModelProto) -> None:
    data = m.SerializeToString()
    r = read_model(BytesSource(data))
    assert r.errors == []
    assert [(n.op_type, n.inputs, n.outputs) for n in r.graph.nodes] == [
        (n.op_type, list(n.input), list(n.output)) for n in m.graph.node
    ]
    sink = run_scanner(data)
    assert not [i for i in sink.incompletes if i.code != "MS-ONNX-093"]


def test_cyclic_graph_does_not_hang() -> None:
    m = model(
        [node("Add", ["x", "b"], ["a"]), node("Mul", ["a", "k"], ["b"]), node("Equal", ["b", "k"], ["y"])],
        [vi("x", [1])],
        [vi("y", [1])],
        [T("k", 2.0)],
    )
    sink = run_scanner(m.SerializeToString())
    assert sink.findings == [] and sink.incompletes == []


def test_function_call_explosion_is_bounded(monkeypatch) -> None:
    """f_i calls f_{i-1} ten times: 10^8 inlined nodes. The analysis stops at its budget
    and says so."""
    from modelsec.backdoor.analysis import AnalysisLimits

    monkeypatch.setattr(SCANNER, "analysis_limits", AnalysisLimits(max_visits=20_000))
    fns = [h.make_function("f", "F0", ["a"], ["b"], [node("Relu", ["a"], ["b"])], [h.make_opsetid("", 17)])]
    for i in range(1, 9):
        calls = [
            h.make_node(
                f"F{i - 1}", ["a" if j == 0 else f"t{j - 1}"], [f"t{j}" if j < 9 else "b"], domain="f"
            )
            for j in range(10)
        ]
        fns.append(
            h.make_function(
                "f", f"F{i}", ["a"], ["b"], calls, [h.make_opsetid("", 17), h.make_opsetid("f", 1)]
            )
        )
    m = model(
        [h.make_node("F8", ["x"], ["y"], domain="f")],
        [vi("x", [1])],
        [vi("y", [1])],
        opsets={"f": 1},
        functions=fns,
    )
    sink = run_scanner(m.SerializeToString())
    assert sink.findings == []
    assert [i.code for i in sink.incompletes] == ["MS-ONNX-093"]


def test_recursive_function_does_not_recurse_forever() -> None:
    fn = h.make_function(
        "f", "R", ["a"], ["b"], [h.make_node("R", ["a"], ["b"], domain="f")], [h.make_opsetid("f", 1)]
    )
    m = model(
        [h.make_node("R", ["x"], ["y"], domain="f")],
        [vi("x", [1])],
        [vi("y", [1])],
        opsets={"f": 1},
        functions=[fn],
    )
    sink = run_scanner(m.SerializeToString())
    assert sink.findings == [] and sink.incompletes == []


def test_many_nodes_sharing_one_value() -> None:
    """Wide fan-out: 20k nodes reading the same input, one output."""
    nodes = [node("Relu", ["x"], [f"r{i}"]) for i in range(20_000)]
    nodes.append(h.make_node("Concat", [f"r{i}" for i in range(20_000)], ["y"], name="cat", axis=0))
    m = model(nodes, [vi("x", [1])], [vi("y", [20_000])], [T("unused", np.zeros(1))])
    sink = run_scanner(m.SerializeToString())
    assert sink.findings == [] and sink.incompletes == []


def test_scan_with_int_attribute_and_loop_without_body_inputs() -> None:
    body = h.make_graph(
        [node("Add", ["s", "e"], ["s2"]), node("Identity", ["s2"], ["o"])],
        "b",
        [vi("s", [1]), vi("e", [1])],
        [vi("s2", [1]), vi("o", [1])],
    )
    loop_body = h.make_graph([], "lb", [], [])
    m = model(
        [
            h.make_node("Scan", ["init", "x"], ["fin", "outs"], name="scan", body=body, num_scan_inputs=1),
            h.make_node("Loop", ["trip", ""], ["z"], name="loop", body=loop_body),
        ],
        [vi("x", [3, 1])],
        [vi("fin", [1]), vi("outs", [3, 1])],
        [T("init", [0.0]), T("trip", 1, np.int64)],
    )
    sink = run_scanner(m.SerializeToString())
    assert sink.findings == []
