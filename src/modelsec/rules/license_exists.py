"""LicenseExists: the model declares a license (model card ``license``, else ``license:`` tags)."""

from __future__ import annotations

from modelsec.findings import Severity, threat
from modelsec.metadata import ModelMetadata
from modelsec.rules.base import EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, SourceType

NO_LICENSE = threat(
    "MS-MET-001",
    "LicenseExists",
    Severity.MEDIUM,
    "Model declares no license",
    "Use a model whose card declares a license, or ask its publisher to add one.",
    "Without a license the terms of use are unknown; the model may not be usable at all.",
)


def declared_licenses(metadata: ModelMetadata) -> list[str]:
    """Every license id the source found (a card may list several)."""
    listed = metadata.extra.get("licenses")
    if listed:
        return [x.strip() for x in listed.split(",") if x.strip()]
    return [metadata.license.strip()] if metadata.license and metadata.license.strip() else []


def missing_metadata(given: EvaluationInput, rule: str) -> RuleOutcome | None:
    """ERROR when the source supplied no metadata at all: the rule cannot be evaluated."""
    if given.metadata is None:
        return RuleOutcome(
            RuleResult.ERROR,
            message=f"{rule} needs source metadata and none was supplied for "
            f"{given.report.target}; failing closed",
        )
    return None


class LicenseExists(Rule[RuleParams]):
    id = "LicenseExists"
    title = "Model declares a license"
    description = (
        "Fails when the Hugging Face model card (or its `license:` tags) declares no license. "
        "Hugging Face sources only: other sources carry no license metadata."
    )
    Params = RuleParams
    sources = frozenset({SourceType.HUGGING_FACE})
    judges_content = False

    def evaluate(self, given: EvaluationInput, params: RuleParams) -> RuleOutcome:
        if (error := missing_metadata(given, self.id)) is not None:
            return error
        assert given.metadata is not None
        licenses = declared_licenses(given.metadata)
        if licenses:
            return RuleOutcome(RuleResult.PASSED, message=f"license: {', '.join(licenses)}")
        where = given.metadata.model_id or given.metadata.uri
        return RuleOutcome(
            RuleResult.FAILED,
            [NO_LICENSE.at(given.metadata.uri, f"{where} declares no license in its model card or tags")],
            "no license declared",
        )


RULE = LicenseExists()
