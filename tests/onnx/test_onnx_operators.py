"""Operators against the official opsets (MS-ONNX-001..004), walked everywhere they hide:
subgraphs, model-local functions, function attribute defaults, training graphs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx.defs
import pytest
from onnx_build import INT64, T, assert_onnx_clean, codes, mlp, model, node, scan, vi

import onnx
from modelsec.onnx.opsets import table
from onnx import helper as h

REPO = Path(__file__).resolve().parents[2]


def one_node(op: str, domain: str = "", opset: int = 17, opsets: dict | None = None, **attrs):
    return model(
        [h.make_node(op, ["x"], ["y"], name="n", domain=domain, **attrs)],
        [vi("x", [1, 4])],
        [vi("y", [1, 4])],
        opset=opset,
        opsets=opsets,
    )


# -- the table -----------------------------------------------------------------------------


def test_committed_table_matches_the_installed_onnx() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen_onnx_opsets.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_table_agrees_with_onnx_schemas_at_every_version() -> None:
    t = table()
    for schema in onnx.defs.get_all_schemas_with_history():
        domain = schema.domain or "ai.onnx"
        assert t.exists(domain, schema.name, schema.since_version) is (not schema.deprecated), (
            domain,
            schema.name,
        )
    for name in ("Relu", "Gelu", "Upsample", "Scatter", "Attention", "TreeEnsembleClassifier"):
        for version in range(1, t.max_version("")):
            try:
                schema = onnx.defs.get_schema(name, version, "")
            except onnx.defs.SchemaError:
                assert not t.exists("", name, version)
                continue
            assert t.exists("", name, version) is (not schema.deprecated), (name, version)


def test_table_semantics() -> None:
    t = table()
    assert t.exists("", "Gelu", 20) and not t.exists("", "Gelu", 19)
    assert t.exists("ai.onnx", "Upsample", 9) and not t.exists("", "Upsample", 10)
    assert t.exists("ai.onnx.ml", "TreeEnsembleClassifier", 3)
    assert not t.exists("ai.onnx.ml", "TreeEnsembleClassifier", 5)
    assert not t.exists("", "NoSuchOp", 17)
    assert t.is_official_domain("") and t.is_official_domain("ai.onnx.preview.training")
    assert not t.is_official_domain("com.microsoft")


# -- official and clean --------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, opset, attrs",
    [("Relu", 6, {}), ("Gelu", 20, {}), ("Upsample", 9, {"scales": [1.0, 1.0]}), ("Identity", 21, {})],
)
def test_official_ops_are_clean(op: str, opset: int, attrs: dict) -> None:
    assert_onnx_clean(scan(one_node(op, opset=opset, **attrs)))


def test_ai_onnx_spelled_out_is_the_default_domain() -> None:
    m = one_node("Relu", domain="ai.onnx")
    assert_onnx_clean(scan(m))


# -- findings ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Python", "PyOp", "PythonOp", "pyop"])
def test_python_ops(op: str) -> None:
    result = scan(one_node(op, domain="ai.onnx.contrib", opsets={"ai.onnx.contrib": 1}))
    assert codes(result) == ["MS-ONNX-003"]
    f = result.findings[0]
    assert f.rule == "KnownFrameworkOperators" and f.subject == f"ai.onnx.contrib::{op}"


def test_python_op_in_the_default_domain_is_still_python() -> None:
    assert codes(scan(one_node("PyOp"))) == ["MS-ONNX-003"]


def test_custom_domain_operator() -> None:
    result = scan(one_node("FusedMatMul", domain="com.microsoft", opsets={"com.microsoft": 1}))
    assert codes(result) == ["MS-ONNX-002"]
    assert result.findings[0].subject == "com.microsoft::FusedMatMul"


@pytest.mark.parametrize(
    "op, opset",
    [("Gelu", 19), ("Upsample", 10), ("Scatter", 13), ("NoSuchOp", 17), ("relu", 17)],
    ids=["before-it-existed", "removed", "removed-later", "unknown", "wrong-case"],
)
def test_ops_outside_the_imported_opset(op: str, opset: int) -> None:
    result = scan(one_node(op, opset=opset))
    assert codes(result) == ["MS-ONNX-001"]
    assert str(opset) in result.findings[0].message


def test_ml_op_without_the_ml_import_is_unknown() -> None:
    m = one_node("Normalizer", domain="ai.onnx.ml", norm="MAX")
    assert codes(scan(m)) == ["MS-ONNX-001"]
    m = one_node("Normalizer", domain="ai.onnx.ml", opsets={"ai.onnx.ml": 3}, norm="MAX")
    assert_onnx_clean(scan(m))


def test_occurrences_are_aggregated_per_operator() -> None:
    nodes = [h.make_node("Evil", [f"v{i}"], [f"v{i + 1}"], name=f"e{i}", domain="x.y") for i in range(50)]
    m = model(nodes, [vi("v0", [1])], [vi("v50", [1])], opsets={"x.y": 1})
    result = scan(m)
    assert codes(result) == ["MS-ONNX-002"]
    f = result.findings[0]
    assert f.details["count"] == 50 and len(f.details["nodes"]) == 5
    assert "(50 nodes)" in f.message


def test_conflicting_opset_imports() -> None:
    m = one_node("Relu")
    m.opset_import.append(h.make_opsetid("", 12))
    assert codes(scan(m)) == ["MS-ONNX-004"]


def test_opset_newer_than_the_table_is_incomplete() -> None:
    newest = table().max_version("")
    result = scan(one_node("Relu", opset=newest + 3))
    assert result.findings == []
    assert [i.code for i in result.incompletes] == ["MS-ONNX-092"]


# -- where operators hide ------------------------------------------------------------------


def _if_with(inner: onnx.NodeProto, depth: int = 1) -> onnx.ModelProto:
    """``inner`` nested ``depth`` levels deep in If/Loop/Scan subgraphs."""
    graph = h.make_graph([inner], "leaf", [], [vi("y", [1, 4])])
    for level in range(depth):
        kind = ("If", "Loop", "Scan")[level % 3]
        if kind == "If":
            n = h.make_node("If", ["c"], ["y"], name=f"if{level}", then_branch=graph, else_branch=graph)
            graph = h.make_graph([n], f"g{level}", [], [vi("y", [1, 4])])
        elif kind == "Loop":
            body = h.make_graph(
                [n2 for n2 in graph.node] + [h.make_node("Identity", ["cin"], ["cout"], name=f"id{level}")],
                f"body{level}",
                [vi("i", [], INT64), h.make_tensor_value_info("cin", onnx.TensorProto.BOOL, [])],
                [h.make_tensor_value_info("cout", onnx.TensorProto.BOOL, []), vi("y", [1, 4])],
            )
            n = h.make_node("Loop", ["trip", "c"], ["y"], name=f"loop{level}", body=body)
            graph = h.make_graph([n], f"g{level}", [], [vi("y", [1, 4])])
        else:
            body = h.make_graph(list(graph.node), f"scanbody{level}", [vi("s_in", [4])], [vi("y", [1, 4])])
            n = h.make_node("Scan", ["x"], ["y"], name=f"scan{level}", body=body, num_scan_inputs=1)
            graph = h.make_graph([n], f"g{level}", [], [vi("y", [1, 4])])
    return model(
        list(graph.node),
        [vi("x", [1, 4]), h.make_tensor_value_info("c", onnx.TensorProto.BOOL, [])],
        [vi("y", [1, 4])],
        [T("trip", 2, np.int64)],
        opsets={"evil": 1},
    )


@pytest.mark.parametrize("depth, copies", [(1, 2), (2, 2), (3, 2), (7, 8)])
def test_custom_op_in_nested_subgraphs(depth: int, copies: int) -> None:
    """Each If level holds the graph twice (then and else): every copy is found."""
    result = scan(_if_with(h.make_node("Backdoor", ["x"], ["y"], name="hidden", domain="evil"), depth))
    assert codes(result) == ["MS-ONNX-002"]
    assert result.findings[0].details["count"] == copies
    where = result.findings[0].details["nodes"][0]
    assert "hidden" in where and "if0" in where


def test_subgraph_nesting_bound_is_incomplete_not_a_crash() -> None:
    result = scan(_if_with(h.make_node("Relu", ["x"], ["y"], name="leaf"), 30))
    assert result.format == "onnx"
    assert any(i.code == "MS-ONNX-090" and "nested deeper" in i.reason for i in result.incompletes)


def test_model_local_function_calls_are_official_and_bodies_are_checked() -> None:
    clean_fn = h.make_function(
        "my.fns", "Act", ["a"], ["b"], [node("Relu", ["a"], ["b"])], [h.make_opsetid("", 17)]
    )
    bad_fn = h.make_function(
        "my.fns",
        "Bad",
        ["a"],
        ["b"],
        [h.make_node("Shell", ["a"], ["b"], name="sh", domain="os.exec")],
        [h.make_opsetid("", 17)],
    )
    m = model(
        [h.make_node("Act", ["x"], ["y"], name="call", domain="my.fns")],
        [vi("x", [1, 4])],
        [vi("y", [1, 4])],
        opsets={"my.fns": 1},
        functions=[clean_fn],
    )
    assert_onnx_clean(scan(m))
    m.functions.append(bad_fn)  # never called: still checked
    result = scan(m)
    assert codes(result) == ["MS-ONNX-002"]
    assert "function my.fns.Bad" in result.findings[0].details["nodes"][0]


def test_function_body_uses_its_own_opset_imports() -> None:
    fn = h.make_function("my.fns", "G", ["a"], ["b"], [node("Gelu", ["a"], ["b"])], [h.make_opsetid("", 20)])
    m = model(
        [h.make_node("G", ["x"], ["y"], name="call", domain="my.fns")],
        [vi("x", [1, 4])],
        [vi("y", [1, 4])],
        opset=17,
        opsets={"my.fns": 1},
        functions=[fn],
    )
    assert_onnx_clean(scan(m))
    del fn.opset_import[:]
    fn.opset_import.append(h.make_opsetid("", 17))
    m.ClearField("functions")
    m.functions.append(fn)
    assert codes(scan(m)) == ["MS-ONNX-001"]


def test_call_to_an_undefined_function_is_a_custom_op() -> None:
    fn = h.make_function(
        "my.fns", "Defined", ["a"], ["b"], [node("Relu", ["a"], ["b"])], [h.make_opsetid("", 17)]
    )
    m = model(
        [h.make_node("Undefined", ["x"], ["y"], name="call", domain="my.fns")],
        [vi("x", [1, 4])],
        [vi("y", [1, 4])],
        opsets={"my.fns": 1},
        functions=[fn],
    )
    assert codes(scan(m)) == ["MS-ONNX-002"]


def test_function_attribute_default_graph_is_checked() -> None:
    fn = h.make_function("my.fns", "F", ["a"], ["b"], [node("Relu", ["a"], ["b"])], [h.make_opsetid("", 17)])
    default = h.make_attribute(
        "body",
        h.make_graph(
            [h.make_node("Sneaky", ["p"], ["q"], name="s", domain="evil")],
            "d",
            [vi("p", [1])],
            [vi("q", [1])],
        ),
    )
    fn.attribute_proto.append(default)
    m = model(
        [h.make_node("F", ["x"], ["y"], domain="my.fns")],
        [vi("x", [1])],
        [vi("y", [1])],
        opsets={"my.fns": 1},
        functions=[fn],
    )
    assert codes(scan(m)) == ["MS-ONNX-002"]


def test_training_graph_operators_are_checked() -> None:
    m = mlp()
    ti = m.training_info.add()
    ti.initialization.CopyFrom(
        h.make_graph(
            [h.make_node("Init", [], ["w"], name="i", domain="evil.train")], "init", [], [vi("w", [1])]
        )
    )
    result = scan(m)
    assert codes(result) == ["MS-ONNX-002"]
    assert "training_info[0].initialization" in result.findings[0].details["nodes"][0]


def test_official_domain_not_imported() -> None:
    m = one_node("Normalizer", domain="ai.onnx.ml")
    result = scan(m)
    assert codes(result) == ["MS-ONNX-001"]
    assert "does not import" in result.findings[0].message


def test_hostile_names_are_escaped_in_reports() -> None:
    """Op types, domains and node names are attacker-chosen: terminal escapes and invalid
    UTF-8 must not reach a report unescaped."""
    import json

    n = onnx.NodeProto()
    n.input.append("x")
    n.output.append("y")
    raw = n.SerializeToString() + b"\x22\x07Ev\x1b[2Jl" + b"\x3a\x04d\xff\xfe1" + b"\x1a\x05n\x1b]0;"
    g = onnx.GraphProto()
    g.input.append(vi("x", [1]))
    g.output.append(vi("y", [1]))
    graph = b"\x0a" + bytes([len(raw)]) + raw + g.SerializeToString()
    data = b"\x08\x09" + b"\x3a" + bytes([len(graph)]) + graph + b"\x42\x02\x10\x11"
    from onnx_build import scan_bytes

    result = scan_bytes(data)
    assert codes(result) == ["MS-ONNX-002"]
    f = result.findings[0]
    text = json.dumps(f.to_dict(), ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates
    assert "\x1b" not in text
    assert "\\x1b[2J" in f.message and "\\udcff" in f.subject
