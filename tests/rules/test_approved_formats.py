"""ApprovedFormats: every model file (or member of a plain container) is in a format of
approvedFormats; parts of a model format are judged with it; unreadable paths fail closed."""

from __future__ import annotations

from rule_helpers import judge, report_with, verdict

from modelsec.context import FormatCategory
from modelsec.findings import Incomplete
from modelsec.policy import Outcome, parse_group
from modelsec.rules.base import RuleResult


def test_default_formats_carry_no_code() -> None:
    assert judge("ApprovedFormats", report_with()).result == RuleResult.PASSED
    pickled = report_with(formats=[("m.pkl", "pickle", FormatCategory.MODEL)])
    outcome = judge("ApprovedFormats", pickled)
    assert outcome.result == RuleResult.FAILED and outcome.message == "unapproved format(s): pickle"
    assert judge("ApprovedFormats", pickled, {"approvedFormats": ["pickle"]}).result == RuleResult.PASSED


def test_parts_of_a_model_format_are_judged_with_it_members_of_containers_alone() -> None:
    torch_zip = report_with(
        formats=[
            ("m.pt", "pytorch-zip", FormatCategory.MODEL),
            ("m.pt!archive/data.pkl", "pickle", FormatCategory.MODEL),
        ]
    )
    outcome = judge("ApprovedFormats", torch_zip, {"approvedFormats": ["pytorch-zip"]})
    assert outcome.result == RuleResult.PASSED
    plain_zip = report_with(
        formats=[
            ("m.zip", "zip", FormatCategory.CONTAINER),
            ("m.zip!model.pkl", "pickle", FormatCategory.MODEL),
        ]
    )
    outcome = judge("ApprovedFormats", plain_zip)
    assert outcome.result == RuleResult.FAILED and [v.file for v in outcome.violations] == ["m.zip!model.pkl"]


def test_unknown_formats_fail_unless_allowed() -> None:
    unknown = report_with(formats=[("m.bin", "unknown", FormatCategory.UNKNOWN)])
    assert judge("ApprovedFormats", unknown).result == RuleResult.FAILED
    assert judge("ApprovedFormats", unknown, {"allowUnknown": True}).result == RuleResult.PASSED


def test_approved_formats_fails_closed_on_paths_it_could_not_read():
    # A formats-only group must not approve a file nobody could read: it may be a pickle.
    group = parse_group({"rules": [{"name": "ApprovedFormats"}]}, "t", "t")
    unread = report_with(
        incompletes=[Incomplete("m/hidden", "cannot list directory: Permission denied", "MS-GEN-004")]
    )
    v = verdict(group, unread)
    assert v.outcome == Outcome.ERROR and v.rules[0].result == RuleResult.ERROR
    assert "m/hidden: cannot list directory" in v.rules[0].message
