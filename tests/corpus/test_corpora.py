"""Every labelled file of the shared corpora, end to end through engine and default group.

`malicious` must be BLOCKED, `benign` ALLOWED; `null` labels are left to policy and only
need a clean verdict (no crash). The corpora are data beside the checkout
(MODELSEC_CORPORA); they are never copied into the project.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

pytestmark = pytest.mark.corpus


def corpora_root() -> Path:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
    return Path(os.environ.get("MODELSEC_CORPORA", default))


def _cases() -> list[tuple[str, str, str | None]]:
    root = corpora_root()
    cases = []
    for manifest in sorted(root.glob("*/manifest.json")) if root.is_dir() else []:
        for entry in json.loads(manifest.read_text()):
            cases.append((manifest.parent.name, entry["file"], entry["label"]))
    return cases


CASES = _cases()


@pytest.mark.parametrize("corpus, name, label", CASES, ids=[f"{c}/{n}" for c, n, _ in CASES])
def test_labelled_file(corpora: Path, corpus: str, name: str, label: str | None) -> None:
    path = corpora / corpus / name
    report = Engine().scan_path(path)
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    summary = (
        f"{verdict.outcome.value}: {verdict.reason}; findings: "
        + "; ".join(f"{f.threat} {f.subject} {f.message}" for f in report.all_findings()[:5])
        + "; incomplete: "
        + "; ".join(i.reason for i in report.all_incompletes()[:3])
    )
    if label == "malicious":
        assert verdict.outcome == Outcome.BLOCKED, summary
    elif label == "benign":
        assert verdict.outcome == Outcome.ALLOWED, summary
    else:
        assert verdict.outcome in set(Outcome), summary


def test_corpora_are_present_in_ci(corpora: Path) -> None:
    assert len(CASES) > 150
