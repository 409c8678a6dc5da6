"""LicenseApproved: every license the model declares is in ``approvedLicenses``."""

from __future__ import annotations

from dataclasses import dataclass

from modelsec.findings import Severity, threat
from modelsec.rules.base import EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, SourceType, param
from modelsec.rules.license_exists import declared_licenses, missing_metadata

UNAPPROVED_LICENSE = threat(
    "MS-MET-002",
    "LicenseApproved",
    Severity.MEDIUM,
    "Model license not approved by the security group",
    "Use a model under an approved license, or ask the group's owners to approve this one.",
)

DEFAULT_APPROVED = ("apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause")


@dataclass(frozen=True, kw_only=True)
class LicenseApprovedParams(RuleParams):
    """Parameters of LicenseApproved: the licenses a model may declare."""

    approved_licenses: list[str] = param(
        default_factory=lambda: list(DEFAULT_APPROVED),
        shown_default=list(DEFAULT_APPROVED),
        alias="approvedLicenses",
        description="SPDX-style license ids as the Hub writes them (apache-2.0, mit, "
        "llama3.1, other...), matched case-insensitively.",
    )


class LicenseApproved(Rule[LicenseApprovedParams]):
    id = "LicenseApproved"
    title = "Model license approved"
    description = (
        "Fails when the model declares no license or a license outside `approvedLicenses` "
        "(every declared license must be approved). Hugging Face sources only."
    )
    Params = LicenseApprovedParams
    sources = frozenset({SourceType.HUGGING_FACE})
    judges_content = False

    def evaluate(self, given: EvaluationInput, params: LicenseApprovedParams) -> RuleOutcome:
        if (error := missing_metadata(given, self.id)) is not None:
            return error
        assert given.metadata is not None
        approved = {x.strip().lower() for x in params.approved_licenses}
        shown = ", ".join(params.approved_licenses) or "none configured: failing closed"
        licenses = declared_licenses(given.metadata)
        where = given.metadata.uri
        if not licenses:
            return RuleOutcome(
                RuleResult.FAILED,
                [UNAPPROVED_LICENSE.at(where, f"no license declared; approved: {shown}")],
                "no license declared",
            )
        bad = [x for x in licenses if x.lower() not in approved]
        if not bad:
            return RuleOutcome(RuleResult.PASSED, message=f"license approved: {', '.join(licenses)}")
        return RuleOutcome(
            RuleResult.FAILED,
            [
                UNAPPROVED_LICENSE.at(where, f"license {x!r} is not in approvedLicenses ({shown})", subject=x)
                for x in bad
            ],
            f"unapproved license: {', '.join(bad)}",
        )


RULE = LicenseApproved()
