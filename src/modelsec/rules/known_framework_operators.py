from modelsec.rules.base import FindingRule, FindingRuleParams


class KnownFrameworkOperators(FindingRule[FindingRuleParams]):
    id = "KnownFrameworkOperators"
    Params = FindingRuleParams
    title = "Only operators of the framework's official registry"
    description = (
        "Fails on graph operators outside the framework's official operator sets (ONNX "
        "custom domains and unknown ops, TensorFlow ops not in its registry): they need "
        "custom native code to run."
    )


RULE = KnownFrameworkOperators()
