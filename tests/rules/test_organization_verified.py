"""OrganizationVerified: the owner is an organisation the Hub verified; unknown fails closed."""

from __future__ import annotations

from rule_helpers import meta, result

from modelsec.rules.base import RuleResult


def test_organization_verified() -> None:
    assert result("OrganizationVerified", meta())[0] == RuleResult.PASSED
    status, message = result(
        "OrganizationVerified", meta(verified_organization=False, extra={"authorType": "user"})
    )
    assert status == RuleResult.FAILED and "user account" in message
    status, message = result("OrganizationVerified", meta(verified_organization=None))
    assert status == RuleResult.FAILED and "could not be established" in message
    assert result("OrganizationVerified", meta(author=None))[0] == RuleResult.ERROR
