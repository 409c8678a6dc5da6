"""The rule registry: every rule is found by its id, parses its defaults, and has its own
test file here (tests/rules/test_<module>.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsec import rules
from modelsec.rules.base import FindingRule, FindingRuleParams, Rule, RuleParams

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("module", rules.RULE_MODULES)
def test_every_rule_has_its_own_test_file(module: str) -> None:
    assert (HERE / f"test_{module}.py").is_file(), f"add tests/rules/test_{module}.py"


@pytest.mark.parametrize("module", rules.RULE_MODULES)
def test_every_rule_is_found_by_its_id_and_parses_its_defaults(module: str) -> None:
    rule = rules.registry()[next(i for i in rules.registry() if rules.module_name(i) == module)]
    assert isinstance(rule, Rule) and rules.get(rule.id) is rule
    params = rule.parse_params(None)
    assert isinstance(params, rule.Params) and isinstance(params, RuleParams)
    if isinstance(rule, FindingRule):
        assert isinstance(params, FindingRuleParams)  # the floor FindingRule.evaluate reads


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"minSeverity": "HIGH", "allowedGlobals": ["mypkg.models.Classifier"]},
        {
            "sigstoreIdentities": [{"identity": "a@example.com", "issuer": "https://i"}],
            "sigstoreTrustedRoot": "{}",
        },
        {"approvedFormats": ["safetensors"], "allowUnknown": True},
    ],
)
def test_constructed_parameters_equal_validated_ones(raw: dict[str, object]) -> None:
    """A built-in group's parameters are constructed from its validated dump without
    pydantic (modelsec.policy.load_group): they must be what validation gives, in type too."""
    from modelsec.rules.params import construct

    for rule in rules.registry().values():
        try:
            validated = rule.parse_params(raw)
        except ValueError:  # pydantic's ValidationError: not this rule's parameters
            continue
        built = construct(rule.Params, raw)
        assert built == validated and type(built) is type(validated), rule.id
        for name in vars(validated):
            assert type(getattr(built, name)) is type(getattr(validated, name)), (rule.id, name)
