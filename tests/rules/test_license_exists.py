"""LicenseExists: the model declares a license (card or license: tags). Hugging Face only."""

from __future__ import annotations

from rule_helpers import meta, result

from modelsec.rules.base import RuleResult


def test_license_exists() -> None:
    assert result("LicenseExists", meta())[0] == RuleResult.PASSED
    assert result("LicenseExists", meta(license=None)) == (RuleResult.FAILED, "no license declared")
    status, message = result("LicenseExists", None)
    assert status == RuleResult.ERROR and "needs source metadata" in message
