"""The rules that judge source metadata: license, organisation, model deny/allow lists."""

from __future__ import annotations

from typing import Any

import pytest

from source_helpers import hf_config
from hf_server import HubServer
from modelsec.engine import ScanReport
from modelsec.findings import Incomplete
from modelsec.metadata import ModelMetadata
from modelsec.policy import Outcome, evaluate, parse_group
from modelsec.rules.base import EvaluationInput, RuleResult, SourceType
from modelsec.sources import ScanOptions, parse_model_uri, scan_model


def meta(**kw: Any) -> ModelMetadata:
    base: dict[str, Any] = dict(
        uri="hf://acme/model", model_id="acme/model", author="acme", license="apache-2.0",
        revision="a" * 40, verified_organization=True, extra={"authorType": "organization"},
    )
    base.update(kw)
    return ModelMetadata(**base)


def run(rules: list[dict[str, Any]], metadata: ModelMetadata | None, report: ScanReport | None = None,
        source: SourceType = SourceType.HUGGING_FACE):  # type: ignore[no-untyped-def]
    group = parse_group({"rules": rules}, "test", "test")
    return evaluate(group, EvaluationInput(report or ScanReport(target="hf://acme/model"), source, metadata))


def result(rule: str, metadata: ModelMetadata | None, **params: Any) -> tuple[RuleResult, str]:
    verdict = run([{"name": rule, "params": params}], metadata)
    return verdict.rules[0].result, verdict.rules[0].message


def test_license_exists() -> None:
    assert result("LicenseExists", meta())[0] == RuleResult.PASSED
    assert result("LicenseExists", meta(license=None)) == (RuleResult.FAILED, "no license declared")
    status, message = result("LicenseExists", None)
    assert status == RuleResult.ERROR and "needs source metadata" in message


def test_license_approved_case_insensitive_and_all_licenses() -> None:
    assert result("LicenseApproved", meta(license="Apache-2.0"))[0] == RuleResult.PASSED
    assert result("LicenseApproved", meta(license="llama3.1"), approvedLicenses=["LLAMA3.1"])[0] == RuleResult.PASSED
    status, message = result("LicenseApproved", meta(license="cc-by-nc-4.0"))
    assert status == RuleResult.FAILED and "cc-by-nc-4.0" in message
    dual = meta(license="mit", extra={"licenses": "mit,gpl-3.0"})
    assert result("LicenseApproved", dual)[0] == RuleResult.FAILED
    assert result("LicenseApproved", dual, approvedLicenses=["mit", "gpl-3.0"])[0] == RuleResult.PASSED
    assert result("LicenseApproved", meta(license=None))[0] == RuleResult.FAILED
    assert result("LicenseApproved", meta(), approvedLicenses=[])[0] == RuleResult.FAILED  # fail closed


def test_organization_verified() -> None:
    assert result("OrganizationVerified", meta())[0] == RuleResult.PASSED
    status, message = result("OrganizationVerified", meta(verified_organization=False, extra={"authorType": "user"}))
    assert status == RuleResult.FAILED and "user account" in message
    status, message = result("OrganizationVerified", meta(verified_organization=None))
    assert status == RuleResult.FAILED and "could not be established" in message
    assert result("OrganizationVerified", meta(author=None))[0] == RuleResult.ERROR


def test_organization_blocked() -> None:
    assert result("OrganizationBlocked", meta(), denyOrgs=["evil-corp"])[0] == RuleResult.PASSED
    status, message = result("OrganizationBlocked", meta(author="Evil-Corp"), denyOrgs=["evil-*"])
    assert status == RuleResult.FAILED and "evil-*" in message
    assert result("OrganizationBlocked", meta(author=None, model_id=None), denyOrgs=["x"])[0] == RuleResult.ERROR


def test_model_blocked_lists() -> None:
    assert result("ModelBlocked", meta(), deniedModels=["other/*"])[0] == RuleResult.PASSED
    assert result("ModelBlocked", meta(), deniedModels=["ACME/Model"])[0] == RuleResult.FAILED
    # A deny beats an allow.
    status, message = result("ModelBlocked", meta(), deniedModels=["acme/*"], approvedModels=["acme/model"])
    assert status == RuleResult.FAILED and "deniedModels" in message
    assert result("ModelBlocked", meta(), approvedModels=["acme/*"])[0] == RuleResult.PASSED
    status, message = result("ModelBlocked", meta(), approvedModels=["trusted/*"])
    assert status == RuleResult.FAILED and "not in approvedModels" in message
    status, message = result("ModelBlocked", meta(model_id=None))
    assert status == RuleResult.ERROR and "no org/name model id" in message
    assert result("ModelBlocked", None)[0] == RuleResult.ERROR


def test_denied_model_overrides_every_other_result() -> None:
    uninspectable = ScanReport(target="hf://acme/model")
    uninspectable.incompletes.append(Incomplete("hf://acme/model/x.bin", "encrypted", "MS-GEN-001"))
    rules = [
        {"name": "LoadTimeCodeExecution"},  # ERROR: something could not be inspected
        {"name": "ModelBlocked", "mode": "NonBlocking", "params": {"deniedModels": ["acme/model"]}},
    ]
    verdict = run(rules, meta(), uninspectable)
    assert verdict.outcome == Outcome.BLOCKED
    assert "overrides every other rule" in verdict.reason
    allowed = run([{"name": "ModelBlocked", "params": {"deniedModels": ["other/x"]}}], meta())
    assert allowed.outcome == Outcome.ALLOWED


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
        return evaluate(group, EvaluationInput(scanned.report, scanned.source_type, scanned.metadata)), scanned

    acme, scanned = verdict_for("hf://acme/unverified")
    assert scanned.metadata.license == "cc-by-nc-4.0"  # from the license: tag
    assert [r.result for r in acme.rules] == [
        RuleResult.PASSED, RuleResult.FAILED, RuleResult.FAILED, RuleResult.PASSED,
    ]
    bob, scanned = verdict_for("hf://bob/personal")
    assert scanned.metadata.extra["licenses"] == "mit,apache-2.0"
    assert scanned.metadata.extra["authorType"] == "user"
    assert [r.result for r in bob.rules] == [
        RuleResult.PASSED, RuleResult.PASSED, RuleResult.FAILED, RuleResult.FAILED,
    ]
    assert bob.outcome == Outcome.BLOCKED


@pytest.mark.parametrize("rule", ["LicenseExists", "LicenseApproved", "OrganizationVerified",
                                  "OrganizationBlocked", "ModelBlocked"])
def test_rules_declare_metadata_only(rule: str) -> None:
    from modelsec import rules as registry

    r = registry.get(rule)
    assert r is not None and r.judges_content is False
    assert r.sources == frozenset({SourceType.HUGGING_FACE})
