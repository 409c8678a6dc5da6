"""OrganizationBlocked: the model's owner is not in ``denyOrgs``."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from modelsec.findings import Severity, threat
from modelsec.rules.base import EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, SourceType, param
from modelsec.rules.license_exists import missing_metadata

BLOCKED_ORG = threat(
    "MS-MET-004",
    "OrganizationBlocked",
    Severity.HIGH,
    "Model published by a denied organisation",
    "Use a model from another publisher; the group's owners deny this one.",
)


@dataclass(frozen=True, kw_only=True)
class OrganizationBlockedParams(RuleParams):
    """Parameters of OrganizationBlocked: the owners whose models are denied."""

    deny_orgs: list[str] = param(
        default_factory=list,
        alias="denyOrgs",
        description="Organisation or user names (glob patterns allowed), matched "
        "case-insensitively on the model's owner.",
    )


def matches(name: str, patterns: list[str]) -> str | None:
    """The first pattern that matches ``name`` case-insensitively, if any."""
    lowered = name.lower()
    return next((p for p in patterns if fnmatch.fnmatchcase(lowered, p.lower())), None)


class OrganizationBlocked(Rule[OrganizationBlockedParams]):
    id = "OrganizationBlocked"
    title = "Publisher not denied"
    description = "Fails when the model's owner matches `denyOrgs`. Hugging Face sources only."
    Params = OrganizationBlockedParams
    sources = frozenset({SourceType.HUGGING_FACE})
    judges_content = False

    def evaluate(self, given: EvaluationInput, params: OrganizationBlockedParams) -> RuleOutcome:
        if (error := missing_metadata(given, self.id)) is not None:
            return error
        meta = given.metadata
        assert meta is not None
        owner = meta.author or (
            meta.model_id.split("/", 1)[0] if meta.model_id and "/" in meta.model_id else None
        )
        if not owner:
            return RuleOutcome(
                RuleResult.ERROR, message=f"the source supplied no author for {meta.uri}; failing closed"
            )
        pattern = matches(owner, params.deny_orgs)
        if pattern is None:
            return RuleOutcome(RuleResult.PASSED, message=f"{owner} is not denied")
        message = f"{owner} matches denyOrgs entry {pattern!r}"
        return RuleOutcome(RuleResult.FAILED, [BLOCKED_ORG.at(meta.uri, message, subject=owner)], message)


RULE = OrganizationBlocked()
