"""OrganizationBlocked: the owner matches no denyOrgs pattern."""

from __future__ import annotations

from rule_helpers import meta, result

from modelsec.rules.base import RuleResult


def test_organization_blocked() -> None:
    assert result("OrganizationBlocked", meta(), denyOrgs=["evil-corp"])[0] == RuleResult.PASSED
    status, message = result("OrganizationBlocked", meta(author="Evil-Corp"), denyOrgs=["evil-*"])
    assert status == RuleResult.FAILED and "evil-*" in message
    assert (
        result("OrganizationBlocked", meta(author=None, model_id=None), denyOrgs=["x"])[0] == RuleResult.ERROR
    )
