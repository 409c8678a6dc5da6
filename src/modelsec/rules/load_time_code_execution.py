from modelsec.rules.base import FindingRule, FindingRuleParams


class LoadTimeCodeExecution(FindingRule[FindingRuleParams]):
    id = "LoadTimeCodeExecution"
    Params = FindingRuleParams
    title = "Code runs when the model is loaded"
    description = (
        "Fails on anything that executes code while a model is deserialised: pickle globals "
        "that run commands, code or imports (os.system, builtins.exec, nested loaders, ...), "
        "Keras Lambda layers and custom objects, chat templates that reach Python internals."
    )


RULE = LoadTimeCodeExecution()
