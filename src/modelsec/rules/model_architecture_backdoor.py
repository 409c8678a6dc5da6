from modelsec.rules.base import FindingRule, FindingRuleParams


class ModelArchitectureBackdoor(FindingRule[FindingRuleParams]):
    id = "ModelArchitectureBackdoor"
    Params = FindingRuleParams
    title = "Architectural backdoor in the graph"
    description = (
        "Fails on graph paths that compare the model input (or a reduction of it) with an "
        "embedded constant and use the result to switch the output to a constant one."
    )


RULE = ModelArchitectureBackdoor()
