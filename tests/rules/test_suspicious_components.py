"""SuspiciousComponents: unlisted pickle globals block, unless a team approves exact names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from rule_helpers import report_with, verdict

from modelsec.engine import Engine
from modelsec.findings import Severity, threat
from modelsec.policy import GroupError, Outcome, evaluate, load_group, parse_group
from modelsec.rules.base import EvaluationInput, SourceType

# acme.models.Classifier built by NEWOBJ and given its state by BUILD; acme.metrics.score
# only referenced. Neither is on the built-in allowlist.
_PICKLE = (
    b"\x80\x04\x8c\x0bacme.models\x94\x8c\nClassifier\x94\x93\x94)\x81\x94}\x94"
    b"(\x8c\x02fn\x94\x8c\x0cacme.metrics\x94\x8c\x05score\x94\x93\x94ub."
)


def _group(tmp_path: Path, allowed: list[str]) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(
        textwrap.dedent(f"""
        apiVersion: modelsec.io/v1alpha1
        kind: SecurityGroup
        metadata: {{name: team}}
        spec:
          rules:
            - name: LoadTimeCodeExecution
            - name: SuspiciousComponents
              params:
                allowedGlobals: {allowed}
    """)
    )
    return path


def _outcome(tmp_path: Path, group: str) -> tuple[Outcome, str]:
    model = tmp_path / "model.pkl"
    model.write_bytes(_PICKLE)
    report = Engine().scan_path(model)
    verdict = evaluate(load_group(group), EvaluationInput(report, SourceType.LOCAL))
    return verdict.outcome, verdict.reason


def test_unlisted_globals_block_under_the_builtin_group(tmp_path: Path) -> None:
    outcome, reason = _outcome(tmp_path, "local-default")
    assert outcome is Outcome.BLOCKED and "SuspiciousComponents" in reason


def test_every_name_must_be_approved(tmp_path: Path) -> None:
    outcome, _ = _outcome(tmp_path, str(_group(tmp_path, ["acme.models.Classifier"])))
    assert outcome is Outcome.BLOCKED  # acme.metrics.score is still unreviewed


def test_approved_names_pass(tmp_path: Path) -> None:
    group = _group(tmp_path, ["acme.models.Classifier", "acme.metrics.score"])
    outcome, reason = _outcome(tmp_path, str(group))
    assert outcome is Outcome.ALLOWED, reason


@pytest.mark.parametrize(
    "name, problem",
    [("os.system", "dangerous"), ("acme.*", "exact dotted name"), ("acme", "exact dotted name")],
)
def test_dangerous_or_inexact_names_are_refused(tmp_path: Path, name: str, problem: str) -> None:
    with pytest.raises(GroupError, match=problem):
        load_group(str(_group(tmp_path, [name])))


def test_low_suspicious_findings_are_notes_unless_the_group_lowers_the_floor() -> None:
    low = threat("MS-TEST-002", "SuspiciousComponents", Severity.LOW, "note", "none")
    report = report_with([low.at("m.pkl", "unlisted class referenced, never called")])
    assert verdict(load_group("local-default"), report).outcome == Outcome.ALLOWED
    strict_notes = parse_group(
        {"rules": [{"name": "SuspiciousComponents", "params": {"minSeverity": "LOW"}}]}, "t", "t"
    )
    assert verdict(strict_notes, report).outcome == Outcome.BLOCKED
