"""ModelBlocked: explicit deny and allow lists of ``org/name``.

A model matching ``deniedModels`` is BLOCKED whatever else the scan found (the rule
a decisive outcome), even when it also matches ``approvedModels``: a deny beats an allow.
When ``approvedModels`` is non-empty it is an allow-list: a model outside it fails too.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelsec.findings import Severity, threat
from modelsec.rules.base import EvaluationInput, Rule, RuleOutcome, RuleParams, RuleResult, SourceType, param
from modelsec.rules.license_exists import missing_metadata
from modelsec.rules.organization_blocked import matches

DENIED_MODEL = threat(
    "MS-MET-005",
    "ModelBlocked",
    Severity.CRITICAL,
    "Model explicitly denied by the security group",
    "Use another model; this one is on the group's deniedModels list.",
)
NOT_APPROVED_MODEL = threat(
    "MS-MET-006",
    "ModelBlocked",
    Severity.HIGH,
    "Model not on the security group's approvedModels list",
    "Use an approved model, or ask the group's owners to add this one to approvedModels.",
)


@dataclass(frozen=True, kw_only=True)
class ModelBlockedParams(RuleParams):
    """Parameters of ModelBlocked: the org/name deny list and allow list."""

    denied_models: list[str] = param(
        default_factory=list,
        alias="deniedModels",
        description="org/name entries (glob patterns allowed: org/*), case-insensitive. A "
        "match blocks the model regardless of every other rule.",
    )
    approved_models: list[str] = param(
        default_factory=list,
        alias="approvedModels",
        description="When non-empty, only matching org/name models pass. Denies win.",
    )


class ModelBlocked(Rule[ModelBlockedParams]):
    id = "ModelBlocked"
    title = "Model not denied (and approved, when an allow-list is set)"
    description = (
        "Fails when the model's org/name matches `deniedModels` (overriding every other "
        "result: the outcome is BLOCKED), or when `approvedModels` is set and the model is "
        "not on it. Hugging Face sources only (others have no org/name)."
    )
    Params = ModelBlockedParams
    sources = frozenset({SourceType.HUGGING_FACE})
    judges_content = False

    def evaluate(self, given: EvaluationInput, params: ModelBlockedParams) -> RuleOutcome:
        if (error := missing_metadata(given, self.id)) is not None:
            return error
        meta = given.metadata
        assert meta is not None
        model_id = meta.model_id
        if not model_id or "/" not in model_id:
            return RuleOutcome(
                RuleResult.ERROR,
                message=f"the source supplied no org/name model id for {meta.uri}, so "
                "deniedModels/approvedModels cannot be checked; failing closed",
            )
        denied = matches(model_id, params.denied_models)
        if denied is not None:
            message = f"{model_id} matches deniedModels entry {denied!r}"
            return RuleOutcome(
                RuleResult.FAILED,
                [DENIED_MODEL.at(meta.uri, message, subject=model_id)],
                message,
                decisive=True,
            )
        if params.approved_models:
            if matches(model_id, params.approved_models) is None:
                message = f"{model_id} is not in approvedModels ({', '.join(params.approved_models)})"
                return RuleOutcome(
                    RuleResult.FAILED,
                    [NOT_APPROVED_MODEL.at(meta.uri, message, subject=model_id)],
                    message,
                )
            return RuleOutcome(RuleResult.PASSED, message=f"{model_id} is approved")
        return RuleOutcome(RuleResult.PASSED, message=f"{model_id} is not denied")


RULE = ModelBlocked()
