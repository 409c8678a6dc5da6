from pydantic import Field

from modelsec.rules.base import FindingRuleParams, Rule, SeverityName


class SuspiciousComponentsParams(FindingRuleParams):
    # LOW findings here are observations (an unlisted class referenced but never called):
    # reported in every output, but not a reason to block on their own.
    min_severity: SeverityName = Field(default="MEDIUM", alias="minSeverity",
                                   description=FindingRuleParams.model_fields["min_severity"].description)


class SuspiciousComponents(Rule):
    id = "SuspiciousComponents"
    title = "Suspicious or malformed components"
    description = (
        "Fails on what is not known to be code execution but has no place in a model: "
        "callables outside the allowlist that the file invokes, archive tricks (path "
        "traversal, links out of the tree, bombs, header mismatches), malformed files, "
        "file and network operators in graphs, external data outside the model."
    )
    Params = SuspiciousComponentsParams


RULE = SuspiciousComponents()
