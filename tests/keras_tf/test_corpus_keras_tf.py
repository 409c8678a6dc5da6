"""The Keras/TensorFlow entries of the shared corpus, through engine and default group."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

pytestmark = pytest.mark.corpus

CASES = [
    ("keras/malicious_lambda.h5", Outcome.BLOCKED, "MS-KERAS-001"),
    ("keras/safe_model.h5", Outcome.ALLOWED, None),
    ("tensorflow/malicious_pyfunc", Outcome.BLOCKED, "MS-TF-001"),
    ("tensorflow/safe_savedmodel", Outcome.ALLOWED, None),
]


@pytest.mark.parametrize("name, outcome, code", CASES, ids=[c[0] for c in CASES])
def test_corpus(corpora: Path, name: str, outcome: Outcome, code: str | None) -> None:
    report = Engine().scan_path(corpora / "modelaudit" / name)
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    assert verdict.outcome == outcome, verdict.reason
    assert [f.threat for f in report.all_findings()] == ([code] if code else [])
