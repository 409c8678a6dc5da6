"""ApprovedLocation: the model's location is under one of approvedLocations, matched on
whole path components after folding `..`; no locations configured approves nothing."""

from __future__ import annotations

import pytest
from rule_helpers import judge, report_with, verdict

from modelsec.policy import Outcome, parse_group
from modelsec.rules.approved_location import within
from modelsec.rules.base import RuleResult


def test_approved_location_matches_whole_components():
    doc = {
        "spec": {"rules": [{"name": "ApprovedLocation", "params": {"approvedLocations": ["/models/team"]}}]}
    }
    group = parse_group(doc, "test", "loc")
    assert verdict(group, report_with()).outcome == Outcome.ALLOWED
    evil = report_with(locations=["file:///models/team-evil/m.safetensors"])
    assert verdict(group, evil).outcome == Outcome.BLOCKED
    traversal = report_with(locations=["file:///models/team/../other/m"])
    assert verdict(group, traversal).outcome == Outcome.BLOCKED


def test_approved_location_without_locations_fails_closed():
    group = parse_group({"rules": [{"name": "ApprovedLocation"}]}, "test", "loc")
    v = verdict(group, report_with())
    assert v.outcome == Outcome.BLOCKED and "failing closed" in v.rules[0].violations[0].message


@pytest.mark.parametrize(
    "location, prefix, inside",
    [
        ("/models/team/m", "/models/team", True),
        ("file:///models/team/m", "/models/team", True),
        ("/models/team", "/models/team", True),
        ("/models/teammate/m", "/models/team", False),
        ("/models/team/../other/m", "/models/team", False),
        ("//models/team/m", "/models/team", True),
        ("s3://bucket/prefix/m", "s3://bucket/prefix", True),
        ("s3://BUCKET/prefix/m", "s3://bucket/prefix", True),
        ("s3://other/prefix/m", "s3://bucket/prefix", False),
        ("hf://org/model", "hf://org", True),
        ("hf://org-evil/model", "hf://org", False),
        ("s3://bucket/prefix/m", "/bucket/prefix", False),
    ],
)
def test_within_compares_scheme_host_and_whole_components(location: str, prefix: str, inside: bool) -> None:
    assert within(location, prefix) is inside


def test_every_location_of_the_model_must_be_approved() -> None:
    report = report_with(locations=["/models/team/a", "/elsewhere/b"])
    outcome = judge("ApprovedLocation", report, {"approvedLocations": ["/models/team"]})
    assert outcome.result == RuleResult.FAILED
    assert [v.subject for v in outcome.violations] == ["/elsewhere/b"]
