"""The labelled public corpora, through the whole engine and the default group.

Malicious pickle-ish files must yield a LoadTimeCodeExecution or SuspiciousComponents
finding (and be BLOCKED); benign ones none (ALLOWED). The corpora sit beside the checkout
(``MODELSEC_CORPORA``); tests skip when they are absent. Containers (zip, 7z, npz) need the
archive formats; a file whose outer format is not registered is skipped with that reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelsec import formats
from modelsec.engine import Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

pytestmark = pytest.mark.corpus

PICKLE_RULES = {"LoadTimeCodeExecution", "SuspiciousComponents"}
PICKLEISH = (".pkl", ".pickle", ".bin", ".pt", ".pth", ".npy", ".npz", ".joblib", ".zip", ".7z")
# Container formats other helpers own; their members come back to the pickle analysis.
NEEDS_FORMAT = {".zip": "zip", ".npz": "zip", ".7z": "7z", ".npy": "numpy-npy"}


def _root() -> Path:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
    return Path(os.environ.get("MODELSEC_CORPORA", default))


def _cases() -> list[tuple[str, str]]:
    cases = []
    for corpus, folders in (
        ("picklescan", ("",)),
        ("modelaudit", ("pickles/", "exploits/", "pytorch/")),
    ):
        manifest = _root() / corpus / "manifest.json"
        if not manifest.is_file():
            continue
        for entry in json.loads(manifest.read_text()):
            name, label = entry["file"], entry["label"]
            if label in ("malicious", "benign") and name.endswith(PICKLEISH) and name.startswith(folders):
                cases.append((f"{corpus}/{name}", label))
    return cases


CASES = _cases()


@pytest.mark.parametrize("name, label", CASES, ids=[c[0] for c in CASES])
def test_labelled_pickle(corpora: Path, name: str, label: str) -> None:
    needed = NEEDS_FORMAT.get(Path(name).suffix)
    if needed and formats.by_name(needed) is None:
        pytest.skip(f"needs the {needed} format (container helper)")
    report = Engine().scan_path(corpora / name)
    verdict = evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL))
    relevant = [f for f in report.all_findings() if f.rule in PICKLE_RULES]
    detail = "; ".join(f"{f.threat} {f.subject} {f.message}" for f in report.all_findings()[:6])
    detail += " | " + "; ".join(i.reason for i in report.all_incompletes()[:3])
    if label == "malicious":
        assert relevant, detail
        assert verdict.outcome is Outcome.BLOCKED, detail
    else:
        assert not report.all_findings() and not report.all_incompletes(), detail
        assert verdict.outcome is Outcome.ALLOWED, detail


def test_the_corpus_is_not_silently_empty(corpora: Path) -> None:
    assert len(CASES) >= 120, len(CASES)
