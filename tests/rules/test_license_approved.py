"""LicenseApproved: every declared license is in approvedLicenses (case-insensitive);
none declared or none approved fails."""

from __future__ import annotations

from rule_helpers import meta, result

from modelsec.rules.base import RuleResult


def test_license_approved_case_insensitive_and_all_licenses() -> None:
    assert result("LicenseApproved", meta(license="Apache-2.0"))[0] == RuleResult.PASSED
    assert (
        result("LicenseApproved", meta(license="llama3.1"), approvedLicenses=["LLAMA3.1"])[0]
        == RuleResult.PASSED
    )
    status, message = result("LicenseApproved", meta(license="cc-by-nc-4.0"))
    assert status == RuleResult.FAILED and "cc-by-nc-4.0" in message
    dual = meta(license="mit", extra={"licenses": "mit,gpl-3.0"})
    assert result("LicenseApproved", dual)[0] == RuleResult.FAILED
    assert result("LicenseApproved", dual, approvedLicenses=["mit", "gpl-3.0"])[0] == RuleResult.PASSED
    assert result("LicenseApproved", meta(license=None))[0] == RuleResult.FAILED
    assert result("LicenseApproved", meta(), approvedLicenses=[])[0] == RuleResult.FAILED  # fail closed
