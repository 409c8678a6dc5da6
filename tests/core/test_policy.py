import textwrap

import pytest
from rule_helpers import report_with, verdict

from modelsec.findings import Incomplete, Severity, threat
from modelsec.formats.base import FormatCategory
from modelsec.policy import GroupError, Mode, Outcome, load_group, parse_group
from modelsec.rules.base import RuleResult

TEST_THREAT = threat("MS-TEST-001", "LoadTimeCodeExecution", Severity.CRITICAL, "test", "fix it")


def test_clean_report_is_allowed_by_default_group():
    v = verdict(load_group("local-default"), report_with())
    assert v.outcome == Outcome.ALLOWED
    assert {r.result for r in v.rules} == {RuleResult.PASSED}


def test_blocking_finding_blocks_and_names_the_rule():
    v = verdict(load_group("local-default"), report_with([TEST_THREAT.at("m.pkl", "os.system")]))
    assert v.outcome == Outcome.BLOCKED
    assert [r.name for r in v.blocking_failures] == ["LoadTimeCodeExecution"]
    assert "LoadTimeCodeExecution" in v.reason


def test_uninspectable_content_is_error_not_allowed():
    v = verdict(load_group("local-default"), report_with(incompletes=[Incomplete("x.zip!a", "encrypted")]))
    assert v.outcome == Outcome.ERROR
    ltce = next(r for r in v.rules if r.name == "LoadTimeCodeExecution")
    assert ltce.result == RuleResult.ERROR and "encrypted" in ltce.message


def test_group_may_accept_uninspectable_content():
    v = verdict(load_group("audit"), report_with(incompletes=[Incomplete("x.zip!a", "encrypted")]))
    assert v.outcome == Outcome.ALLOWED


def test_failure_beats_error():
    v = verdict(
        load_group("local-default"),
        report_with([TEST_THREAT.at("m.pkl", "x")], [Incomplete("y", "unreadable")]),
    )
    assert v.outcome == Outcome.BLOCKED


def test_non_blocking_failure_is_a_warning():
    v = verdict(load_group("local-default"), report_with(formats=[("m.pkl", "pickle", FormatCategory.MODEL)]))
    assert v.outcome == Outcome.ALLOWED
    assert [w.name for w in v.warnings] == ["ApprovedFormats"]


def test_strict_group_blocks_unapproved_formats():
    v = verdict(load_group("strict"), report_with(formats=[("m.pkl", "pickle", FormatCategory.MODEL)]))
    assert v.outcome == Outcome.BLOCKED


def test_disabled_rule_is_skipped():
    group = parse_group(
        {"rules": [{"name": "LoadTimeCodeExecution", "mode": "Disabled"}, {"name": "RuntimeCodeExecution"}]},
        "t",
        "t",
    )
    v = verdict(group, report_with([TEST_THREAT.at("m.pkl", "x")]))
    assert v.outcome == Outcome.ALLOWED and v.rules[0].result == RuleResult.SKIPPED


@pytest.mark.parametrize(
    "rules, what",
    [
        ([], "lists no rules"),
        ([{"name": "LoadTimeCodeExecution", "mode": "Disabled"}], "has every rule Disabled"),
    ],
)
def test_a_group_that_checks_nothing_fails_closed_unless_it_says_so(rules, what):
    blocked_model = report_with([TEST_THREAT.at("m.pkl", "os.system")])
    empty = parse_group({"rules": rules}, "t", "t")
    assert empty.spec.checks_nothing and what in (empty.spec.emptiness() or "")
    v = verdict(empty, blocked_model)
    assert v.outcome == Outcome.ERROR and "allowEmpty" in v.reason and "failing closed" in v.reason

    meant = parse_group({"rules": rules, "allowEmpty": True}, "t", "t")
    v = verdict(meant, blocked_model)
    assert v.outcome == Outcome.ALLOWED and "every model is ALLOWED" in v.reason


def test_allow_empty_changes_nothing_for_a_group_with_rules():
    group = parse_group({"rules": [{"name": "LoadTimeCodeExecution"}], "allowEmpty": True}, "t", "t")
    assert group.spec.emptiness() is None
    v = verdict(group, report_with([TEST_THREAT.at("m.pkl", "os.system")]))
    assert v.outcome == Outcome.BLOCKED


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"rules": [{"name": "NoSuchRule"}]}, "unknown rule 'NoSuchRule'"),
        ({"rules": [{"name": "ApprovedFormats", "params": {"aprovedFormats": []}}]}, "aprovedFormats"),
        ({"rules": [{"name": "ApprovedFormats", "mode": "Sometimes"}]}, "Blocking"),
        ({"rules": [{"name": "ApprovedFormats"}, {"name": "ApprovedFormats"}]}, "listed twice"),
        ({"rulez": []}, "rulez"),
    ],
)
def test_invalid_groups_are_rejected_with_a_reason(spec, message):
    with pytest.raises(GroupError, match=message):
        parse_group(spec, "team.yaml", "team")


def test_group_file_in_resource_shape(tmp_path):
    path = tmp_path / "team.yaml"
    path.write_text(
        textwrap.dedent("""
        apiVersion: modelsec.io/v1alpha1
        kind: SecurityGroup
        metadata: {name: huggingface-research}
        spec:
          sourceRef: hf
          rules:
            - {name: LoadTimeCodeExecution, mode: Blocking}
            - {name: ApprovedFormats, mode: NonBlocking, params: {approvedFormats: [safetensors]}}
    """)
    )
    group = load_group(str(path))
    assert group.name == "huggingface-research"
    assert group.spec.rules[1].mode == Mode.NON_BLOCKING
    with pytest.raises(GroupError, match="no built-in group or file"):
        load_group(str(tmp_path / "missing.yaml"))


def test_rule_crash_is_error_not_allowed(monkeypatch):
    from modelsec import rules

    rule = rules.get("SuspiciousComponents")
    monkeypatch.setattr(type(rule), "evaluate", lambda self, given, params: 1 / 0)
    v = verdict(load_group("local-default"), report_with())
    assert v.outcome == Outcome.ERROR


def test_decisive_failure_blocks_even_in_non_blocking_mode(monkeypatch):
    from modelsec.rules.base import Rule, RuleOutcome, RuleParams

    class Denied(Rule[RuleParams]):
        id = "SuspiciousComponents"
        title = description = "t"
        Params = RuleParams

        def evaluate(self, given, params):
            return RuleOutcome(RuleResult.FAILED, message="denied", decisive=True)

    from modelsec import rules

    real = rules.get
    monkeypatch.setattr(
        rules, "get", lambda rule_id: Denied() if rule_id == "SuspiciousComponents" else real(rule_id)
    )
    group = parse_group({"rules": [{"name": "SuspiciousComponents", "mode": "NonBlocking"}]}, "t", "t")
    assert verdict(group, report_with()).outcome == Outcome.BLOCKED
