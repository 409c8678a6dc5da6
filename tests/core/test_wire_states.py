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
from modelsec.report import document
from modelsec.report.jsonout import SCHEMA
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
    line = RuleEvaluation(
        "LoadTimeCodeExecution", Mode.NON_BLOCKING, RuleResult.FAILED, [finding], "1 finding(s)"
    )
    assert json.loads(json.dumps(line.to_dict())) == {
        "name": "LoadTimeCodeExecution",
        "mode": "NonBlocking",
        "result": "FAILED",
        "violations": 1,
        "message": "1 finding(s)",
    }


def test_group_spec_round_trips_with_the_same_strings():
    raw = {"errorOutcome": "BLOCKED", "rules": [{"name": "ApprovedFormats", "mode": "NonBlocking"}]}
    dumped = SecurityGroupSpec.model_validate(raw).model_dump(
        mode="json", by_alias=True, exclude_defaults=True
    )
    assert dumped == {
        "errorOutcome": "BLOCKED",
        "rules": [{"name": "ApprovedFormats", "mode": "NonBlocking"}],
    }


def test_modelscan_status_carries_the_same_strings():
    status = ModelScanStatus(
        outcome=Outcome.BLOCKED,
        rules=[
            RuleStatus(name="ApprovedFormats", mode=Mode.BLOCKING, result=RuleResult.FAILED, violations=2)
        ],
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


def _document(outcome: str, mode: str = "Blocking", result: str = "FAILED") -> str:
    model = {
        "target": "m",
        "uri": "file:///m",
        "sourceType": "Local",
        "outcome": outcome,
        "fingerprint": "f",
        "files": [],
        "rules": [{"name": "ApprovedFormats", "mode": mode, "result": result}],
    }
    return json.dumps(
        {
            "schemaVersion": SCHEMA,
            "scanner": {"name": "modelsec", "version": "0"},
            "group": {"name": "g"},
            "outcome": outcome,
            "models": [model],
        }
    )


def test_a_saved_report_reads_back_as_members_and_dumps_the_same_strings():
    read = document.parse(_document("BLOCKED"), "report.json")
    assert read.outcome is Outcome.BLOCKED and read.models[0].outcome is Outcome.BLOCKED
    rule = read.models[0].rules[0]
    assert rule.mode is Mode.BLOCKING and rule.result is RuleResult.FAILED
    assert json.loads(read.model_dump_json(by_alias=True))["models"][0]["rules"][0]["mode"] == "Blocking"


@pytest.mark.parametrize(
    "outcome, mode, result",
    [
        ("PASSED", "Blocking", "FAILED"),
        ("allowed", "Blocking", "FAILED"),
        ("BLOCKED", "Warn", "FAILED"),
        ("BLOCKED", "Blocking", "OK"),
    ],
)
def test_a_report_with_a_state_modelsec_never_writes_is_refused(outcome, mode, result):
    # an edited or hostile report must not be carried on with a state nothing understands
    with pytest.raises(document.DocumentError, match="invalid scan result"):
        document.parse(_document(outcome, mode, result), "report.json")
