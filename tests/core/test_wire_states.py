"""The states that cross a boundary (JSON reports, CRD status, exit codes) are enums whose
serialised form is the plain string it always was: these pin that form, so that turning a
``str`` constant into an enum member, or one enum base into another, cannot change what
clients read."""

import json

import pytest

from modelsec.cli import exitcodes
from modelsec.findings import Severity, threat
from modelsec.k8s.scan import ModelScanStatus, RuleStatus
from modelsec.policy import Mode, Outcome, RuleEvaluation, SecurityGroupSpec
from modelsec.rules.base import RuleResult


@pytest.mark.parametrize(
    ("enum", "wire"),
    [
        (Outcome, ["ALLOWED", "BLOCKED", "ERROR"]),
        (Mode, ["Blocking", "NonBlocking", "Disabled"]),
        (RuleResult, ["PASSED", "FAILED", "ERROR", "SKIPPED"]),
    ],
)
def test_members_serialise_as_their_historic_strings(enum, wire):
    assert [m.value for m in enum] == wire
    for member, text in zip(enum, wire):
        # every way a value leaves the process: JSON, str(), f-strings, comparison with
        # the string a client sends back
        assert json.dumps(member) == json.dumps(text)
        assert str(member) == text
        assert f"{member}" == text
        assert member == text and enum(text) is member


def test_rule_line_of_a_report_is_unchanged():
    finding = threat("MS-TEST-900", "LoadTimeCodeExecution", Severity.HIGH, "t", "r").at("m.pkl", "why")
    line = RuleEvaluation("LoadTimeCodeExecution", Mode.NON_BLOCKING, RuleResult.FAILED, [finding], "1 finding(s)")
    assert json.loads(json.dumps(line.to_dict())) == {
        "name": "LoadTimeCodeExecution",
        "mode": "NonBlocking",
        "result": "FAILED",
        "violations": 1,
        "message": "1 finding(s)",
    }


def test_group_spec_round_trips_with_the_same_strings():
    raw = {"errorOutcome": "BLOCKED", "rules": [{"name": "ApprovedFormats", "mode": "NonBlocking"}]}
    dumped = SecurityGroupSpec.model_validate(raw).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert dumped == {"errorOutcome": "BLOCKED", "rules": [{"name": "ApprovedFormats", "mode": "NonBlocking"}]}


def test_modelscan_status_carries_the_same_strings():
    status = ModelScanStatus(
        outcome=Outcome.BLOCKED,
        rules=[RuleStatus(name="ApprovedFormats", mode=Mode.BLOCKING, result=RuleResult.FAILED, violations=2)],
    )
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["outcome"] == "BLOCKED"
    assert dumped["rules"] == [
        {"name": "ApprovedFormats", "mode": "Blocking", "result": "FAILED", "violations": 2, "message": ""}
    ]


def test_exit_codes_are_found_by_outcome_member_and_by_its_string():
    # exitcodes keys by string (importing the policy there would slow `modelsec --version`)
    for outcome, code in [(Outcome.ALLOWED, 0), (Outcome.BLOCKED, 1), (Outcome.ERROR, 2)]:
        assert exitcodes.FOR_OUTCOME[outcome] == exitcodes.FOR_OUTCOME[outcome.value] == code
