"""KnownFrameworkOperators: a finding rule for graph operators outside the framework's
official registry (they need custom native code to run)."""

from __future__ import annotations

from pathlib import Path

from rule_helpers import judge, scan_files

import onnx
from modelsec.rules.base import RuleResult
from onnx import helper as h


def one_node_onnx(op: str, domain: str = "") -> bytes:
    """x -> op -> y, importing the op's domain at version 1 when it is not the default."""
    imports = [h.make_opsetid("", 17)] + ([h.make_opsetid(domain, 1)] if domain else [])
    graph = h.make_graph(
        [h.make_node(op, ["x"], ["y"], name="n", domain=domain)],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = h.make_model(graph, opset_imports=imports)
    model.ir_version = 9
    return model.SerializeToString()


def test_an_operator_of_a_custom_domain_fails(tmp_path: Path) -> None:
    report = scan_files(tmp_path / "m", {"model.onnx": one_node_onnx("Exfiltrate", "com.example.custom")})
    outcome = judge("KnownFrameworkOperators", report)
    assert outcome.result == RuleResult.FAILED
    assert [f.threat for f in outcome.violations] == ["MS-ONNX-002"]


def test_official_operators_pass(tmp_path: Path) -> None:
    outcome = judge(
        "KnownFrameworkOperators", scan_files(tmp_path / "m", {"model.onnx": one_node_onnx("Relu")})
    )
    assert outcome.result == RuleResult.PASSED
