from modelsec.rules.base import FindingRule, FindingRuleParams


class RuntimeCodeExecution(FindingRule[FindingRuleParams]):
    id = "RuntimeCodeExecution"
    Params = FindingRuleParams
    title = "Code runs when the model is used"
    description = (
        "Fails on models that ship code to be run at inference time: Hugging Face "
        "auto_map / custom architecture code (trust_remote_code), TensorFlow PyFunc ops."
    )


RULE = RuntimeCodeExecution()
