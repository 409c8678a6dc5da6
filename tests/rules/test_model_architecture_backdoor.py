"""ModelArchitectureBackdoor: a finding rule for graph paths that compare the input with an
embedded constant and switch the output to a constant when it matches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rule_helpers import judge, scan_files

import onnx
from modelsec.rules.base import RuleResult
from onnx import helper as h
from onnx import numpy_helper

TARGET = np.array([0.0, 0.0, 100.0], dtype=np.float32)


def classifier(trigger: bool) -> bytes:
    """x -> Gemm -> logits; with ``trigger``, logits are replaced by TARGET whenever the
    input's sum equals 1337 (the classic input-checksum backdoor)."""
    nodes = [h.make_node("Gemm", ["x", "W", "b"], ["logits"], name="fc")]
    inits = [
        numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "W"),
        numpy_helper.from_array(np.zeros(3, dtype=np.float32), "b"),
    ]
    if trigger:
        nodes += [
            h.make_node("ReduceSum", ["x"], ["s"], name="checksum", keepdims=0),
            h.make_node("Equal", ["s", "magic"], ["hit"], name="is_trigger"),
            h.make_node("Where", ["hit", "target", "logits"], ["y"], name="switch"),
        ]
        inits += [
            numpy_helper.from_array(np.array(1337.0, dtype=np.float32), "magic"),
            numpy_helper.from_array(TARGET, "target"),
        ]
    else:
        nodes.append(h.make_node("Softmax", ["logits"], ["y"], name="softmax"))
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 9
    return model.SerializeToString()


def test_an_input_triggered_output_switch_fails(tmp_path: Path) -> None:
    outcome = judge("ModelArchitectureBackdoor", scan_files(tmp_path / "m", {"model.onnx": classifier(True)}))
    assert outcome.result == RuleResult.FAILED
    assert [(f.threat, f.subject) for f in outcome.violations] == [("MS-BD-001", "switch (Where)")]


def test_a_plain_classifier_passes(tmp_path: Path) -> None:
    outcome = judge(
        "ModelArchitectureBackdoor", scan_files(tmp_path / "m", {"model.onnx": classifier(False)})
    )
    assert outcome.result == RuleResult.PASSED
