"""The official ONNX backend test models (every operator of every opset, control flow,
functions, ML and training ops, real CNNs) must be recognised and pass clean: a false
positive here is one on a model the ONNX project itself ships."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import onnx
from modelsec.bytesource import BytesSource
from modelsec.engine import Engine

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


def _generated_cases() -> list:
    from onnx.backend.test.case import model as model_cases
    from onnx.backend.test.case import node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            c
            for c in node_cases.collect_testcases(None) + model_cases.collect_testcases()
            if c.model is not None
        ]


def test_every_official_operator_test_model_is_clean() -> None:
    cases = _generated_cases()
    assert len(cases) > 1000
    engine = Engine()
    problems = []
    op_types = set()
    for case in cases:
        result = engine.scan_source(f"{case.name}.onnx", BytesSource(case.model.SerializeToString()))
        op_types.update((n.domain, n.op_type) for n in case.model.graph.node)
        if result.format != "onnx" or result.findings or result.incompletes:
            problems.append(
                (case.name, result.format, [f.to_dict() for f in result.findings], result.incompletes)
            )
    assert problems == []
    # the corpus really exercises control flow, ML ops and the comparisons we analyse
    for expected in [
        ("", "If"),
        ("", "Loop"),
        ("", "Scan"),
        ("", "Where"),
        ("", "Equal"),
        ("ai.onnx.ml", "TreeEnsemble"),
        ("ai.onnx.preview.training", "Adam"),
    ]:
        assert expected in op_types


@pytest.mark.parametrize("path", sorted(DATA.glob("**/*.onnx")), ids=lambda p: str(p.relative_to(DATA)))
def test_shipped_models_are_clean(path: Path) -> None:
    result = Engine().scan_file(path)
    assert result.format == "onnx"
    assert result.findings == [] and result.incompletes == []
