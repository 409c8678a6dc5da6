from dataclasses import dataclass
from typing import Annotated

from modelsec.pickle.threats import UNKNOWN_CALL, UNKNOWN_REFERENCE
from modelsec.rules.base import (
    MIN_SEVERITY_DESCRIPTION,
    Check,
    EvaluationInput,
    FindingRule,
    FindingRuleParams,
    RuleOutcome,
    SeverityName,
    param,
)

# Findings about pickle globals that are merely not on the built-in allowlist: a team may
# approve its own reviewed classes by exact name. Denylisted names are findings of
# LoadTimeCodeExecution and can never be approved here.
_APPROVABLE = frozenset({UNKNOWN_CALL.code, UNKNOWN_REFERENCE.code})


def _exact_reviewed_names(names: frozenset[str]) -> frozenset[str]:
    # Imported here: only a group that sets allowedGlobals is validated with them.
    from modelsec.pickle.denylist import denied
    from modelsec.pickle.names import is_dotted_identifier

    for name in names:
        if not is_dotted_identifier(name) or "." not in name:
            raise ValueError(f"{name!r} is not an exact dotted name (module.attribute)")
        hit = denied(name)
        if hit is not None:
            raise ValueError(
                f"{name!r} cannot be allowed: it is dangerous ({hit.category.value}, matched {hit.path})"
            )
    return names


@dataclass(frozen=True, kw_only=True)
class SuspiciousComponentsParams(FindingRuleParams):
    """Parameters of SuspiciousComponents: the lowest severity that fails, reviewed pickle globals."""

    # LOW findings here are observations: reported in every output, but not a reason to
    # block on their own.
    min_severity: SeverityName = param(
        default="MEDIUM",
        alias="minSeverity",
        description=MIN_SEVERITY_DESCRIPTION,
    )
    allowed_globals: Annotated[frozenset[str], Check(_exact_reviewed_names)] = param(
        default=frozenset(),
        alias="allowedGlobals",
        description="Exact dotted names of your own reviewed classes or functions that pickles "
        "may import and call (like PyTorch's add_safe_globals), e.g. mypkg.models.Classifier. "
        "An implicit method call is named after the class (mypkg.models.Classifier.__setstate__) "
        "and must be listed too. No wildcards; names the denylist marks dangerous are refused.",
    )


class SuspiciousComponents(FindingRule[SuspiciousComponentsParams]):
    id = "SuspiciousComponents"
    title = "Suspicious or malformed components"
    description = (
        "Fails on what is not known to be code execution but has no place in a model: "
        "pickle globals outside the allowlist (imported or called, unless approved in "
        "allowedGlobals), archive tricks (path traversal, links out of the tree, bombs, header "
        "mismatches), malformed or hand-crafted files, file and network operators in graphs, "
        "external data outside the model."
    )
    Params = SuspiciousComponentsParams

    def evaluate(self, given: EvaluationInput, params: SuspiciousComponentsParams) -> RuleOutcome:
        outcome = super().evaluate(given, params)
        allowed = params.allowed_globals
        if not allowed or not outcome.violations:
            return outcome
        kept = [f for f in outcome.violations if not (f.threat in _APPROVABLE and f.subject in allowed)]
        if kept:
            files = {f.file for f in kept}
            return RuleOutcome(outcome.result, kept, f"{len(kept)} finding(s) in {len(files)} file(s)")
        return self.passed_or_incomplete(given)


RULE = SuspiciousComponents()
