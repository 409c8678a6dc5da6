"""OrganizationVerified: the model belongs to an organisation the Hub has verified."""

from __future__ import annotations

from modelsec.findings import Severity, threat
from modelsec.rules.base import EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, SourceType
from modelsec.rules.license_exists import missing_metadata

UNVERIFIED_ORG = threat(
    "MS-MET-003",
    "OrganizationVerified",
    Severity.MEDIUM,
    "Model publisher is not a verified organisation",
    "Prefer the model as published by its verified organisation, or disable this rule for "
    "groups that accept community uploads.",
    "Anyone can create an account named like a well-known company; the Hub's verified badge "
    "is the evidence that the publisher is who the name suggests.",
)


class OrganizationVerified(Rule[RuleParams]):
    id = "OrganizationVerified"
    title = "Publisher is a verified organisation"
    description = (
        "Fails when the model's owner is not an organisation verified by the Hub, including "
        "when this could not be established (user accounts, lookup failures: fail closed). "
        "Hugging Face sources only."
    )
    Params = RuleParams
    sources = frozenset({SourceType.HUGGING_FACE})
    judges_content = False

    def evaluate(self, given: EvaluationInput, params: RuleParams) -> RuleOutcome:
        if (error := missing_metadata(given, self.id)) is not None:
            return error
        meta = given.metadata
        assert meta is not None
        if not meta.author:
            return RuleOutcome(
                RuleResult.ERROR, message=f"the source supplied no author for {meta.uri}; failing closed"
            )
        if meta.verified_organization is True:
            return RuleOutcome(RuleResult.PASSED, message=f"{meta.author} is a verified organisation")
        kind = meta.extra.get("authorType", "unknown")
        if meta.verified_organization is None:
            why = f"whether {meta.author} is a verified organisation could not be established; failing closed"
        elif kind == "user":
            why = f"{meta.author} is a user account, not a verified organisation"
        else:
            why = f"{meta.author} is not a verified organisation"
        return RuleOutcome(RuleResult.FAILED, [UNVERIFIED_ORG.at(meta.uri, why, subject=meta.author)], why)


RULE = OrganizationVerified()
