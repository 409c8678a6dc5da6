"""LoadTimeCodeExecution: a finding rule. Fails on the engine's findings carrying its id
(at or above minSeverity); anything the engine could not inspect makes it ERROR."""

from __future__ import annotations

from pathlib import Path

from rule_helpers import judge, report_with, scan_files

from modelsec.findings import Incomplete, Severity, threat
from modelsec.rules.base import RuleResult

# os.system("id") on unpickling: GLOBAL os.system, the argument tuple, REDUCE.
OS_SYSTEM = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94."
# {"a": 1, "b": 2}: no global at all.
PLAIN_DICT = b"\x80\x04}\x94(\x8c\x01a\x94K\x01\x8c\x01b\x94K\x02u."

MEDIUM = threat("MS-TEST-410", "LoadTimeCodeExecution", Severity.MEDIUM, "test", "none")
OTHER_RULE = threat("MS-TEST-411", "RuntimeCodeExecution", Severity.CRITICAL, "test", "none")


def test_a_pickle_that_runs_a_command_fails(tmp_path: Path) -> None:
    outcome = judge("LoadTimeCodeExecution", scan_files(tmp_path / "m", {"model.pkl": OS_SYSTEM}))
    assert outcome.result == RuleResult.FAILED
    assert [(f.threat, f.subject) for f in outcome.violations] == [("MS-PKL-100", "os.system")]
    assert outcome.message == "1 finding(s) in 1 file(s)"


def test_a_pickle_of_plain_data_passes(tmp_path: Path) -> None:
    outcome = judge("LoadTimeCodeExecution", scan_files(tmp_path / "m", {"model.pkl": PLAIN_DICT}))
    assert outcome.result == RuleResult.PASSED and outcome.violations == []


def test_findings_below_min_severity_do_not_fail() -> None:
    report = report_with([MEDIUM.at("m.pkl", "medium")])
    assert judge("LoadTimeCodeExecution", report).result == RuleResult.FAILED
    assert judge("LoadTimeCodeExecution", report, {"minSeverity": "HIGH"}).result == RuleResult.PASSED


def test_findings_of_other_rules_are_not_its_own() -> None:
    assert judge("LoadTimeCodeExecution", report_with([OTHER_RULE.at("m", "x")])).result == RuleResult.PASSED


def test_uninspected_content_is_an_error_not_a_pass() -> None:
    outcome = judge("LoadTimeCodeExecution", report_with(incompletes=[Incomplete("x.zip!a", "encrypted")]))
    assert outcome.result == RuleResult.ERROR
    assert "encrypted" in outcome.message and "failing closed" in outcome.message
