"""The rules that judge source metadata (license, organisation, model deny/allow lists) on
metadata a real source supplies; each rule's own tests are in tests/rules."""

from __future__ import annotations

import pytest
from hf_server import HubServer
from rule_helpers import run
from source_helpers import hf_config

from modelsec.policy import Outcome, evaluate, parse_group
from modelsec.rules.base import EvaluationInput, RuleResult, SourceType
from modelsec.sources import ScanOptions, parse_model_uri, scan_model


def test_metadata_rules_skip_non_hub_sources() -> None:
    verdict = run([{"name": "LicenseExists"}, {"name": "ModelBlocked"}], None, source=SourceType.S3)
    assert [r.result for r in verdict.rules] == [RuleResult.SKIPPED, RuleResult.SKIPPED]


def test_rules_on_metadata_from_the_hub(hub: HubServer) -> None:
    hub.orgs["acme"] = False
    hub.users.add("bob")
    hub.add_repo("acme/unverified", {"a.json": b"{}"}, tags=["license:cc-by-nc-4.0"])
    hub.add_repo("bob/personal", {"a.json": b"{}"}, card_data={"license": ["mit", "apache-2.0"]})
    rules = [
        {"name": "LicenseExists"},
        {"name": "LicenseApproved", "params": {"approvedLicenses": ["mit", "apache-2.0"]}},
        {"name": "OrganizationVerified"},
        {"name": "OrganizationBlocked", "params": {"denyOrgs": ["bob"]}},
    ]
    group = parse_group({"rules": rules}, "test", "test")

    def verdict_for(uri: str):  # type: ignore[no-untyped-def]
        scanned = scan_model(parse_model_uri(uri), options=ScanOptions(config=hf_config(hub)))
        return evaluate(
            group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)
        ), scanned

    acme, scanned = verdict_for("hf://acme/unverified")
    assert scanned.metadata.license == "cc-by-nc-4.0"  # from the license: tag
    assert [r.result for r in acme.rules] == [
        RuleResult.PASSED,
        RuleResult.FAILED,
        RuleResult.FAILED,
        RuleResult.PASSED,
    ]
    bob, scanned = verdict_for("hf://bob/personal")
    assert scanned.metadata.extra["licenses"] == "mit,apache-2.0"
    assert scanned.metadata.extra["authorType"] == "user"
    assert [r.result for r in bob.rules] == [
        RuleResult.PASSED,
        RuleResult.PASSED,
        RuleResult.FAILED,
        RuleResult.FAILED,
    ]
    assert bob.outcome == Outcome.BLOCKED


@pytest.mark.parametrize(
    "rule",
    ["LicenseExists", "LicenseApproved", "OrganizationVerified", "OrganizationBlocked", "ModelBlocked"],
)
def test_rules_declare_metadata_only(rule: str) -> None:
    from modelsec import rules as registry

    r = registry.get(rule)
    assert r is not None and r.judges_content is False
    assert r.sources == frozenset({SourceType.HUGGING_FACE})
