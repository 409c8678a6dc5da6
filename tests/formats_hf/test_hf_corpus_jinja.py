"""The shared corpus's Jinja samples (categories jinja-*), through engine and default group:
every malicious sample BLOCKED by a template finding, every benign one ALLOWED with no
template finding and nothing left uninspected. The corpus is data beside the checkout
(MODELSEC_CORPORA); skipped when absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

pytestmark = pytest.mark.corpus
TEMPLATE_FINDINGS = ("MS-TPL-", "MS-CFG-002")


def _cases(root: Path) -> list[tuple[str, str]]:
    manifest = root / "modelaudit" / "manifest.json"
    if not manifest.is_file():
        pytest.skip(f"no modelaudit manifest under {root}")
    entries = json.loads(manifest.read_text())
    return [(e["file"], e["label"]) for e in entries if e["category"].startswith("jinja")]


def test_jinja_corpus_scores_100_percent(corpora: Path) -> None:
    cases = _cases(corpora)
    assert len(cases) >= 38
    group = load_group("local-default")
    wrong = []
    for name, label in cases:
        report = Engine().scan_path(corpora / "modelaudit" / name)
        verdict = evaluate(group, EvaluationInput(report, SourceType.LOCAL))
        template_findings = [f for f in report.all_findings() if f.threat.startswith(TEMPLATE_FINDINGS)]
        if label == "malicious":
            ok = verdict.outcome == Outcome.BLOCKED and template_findings
        else:
            ok = verdict.outcome == Outcome.ALLOWED and not template_findings and not report.all_incompletes()
        if not ok:
            wrong.append((name, label, verdict.outcome.value, verdict.reason))
    assert wrong == [], wrong


def test_jinja_corpus_as_one_directory_is_blocked(corpora: Path) -> None:
    _cases(corpora)
    report = Engine().scan_path(corpora / "modelaudit" / "jinja2")
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    assert verdict.outcome == Outcome.BLOCKED
